"""Paths inside a model repository, resolved so that nothing can point outside it.

The only code that knows the folder layout (REPO/NAME/config.json, REPO/NAME/VERSION/FILE):
export, the service's store, the benchmark and the tests' fakes all ask here.
"""

from __future__ import annotations

from pathlib import Path

from models.repository.config import CONFIG_FILENAME, check_model_name

#: Where ``attnserve demo build`` writes and ``attnserve serve`` without ``--repo`` reads.
DEMO_REPOSITORY = Path("model_repository")


def model_dir(repo: Path, name: str) -> Path:
    """REPO/NAME, after checking NAME is a safe single path segment."""
    return Path(repo) / check_model_name(name)


def config_path(repo: Path, name: str) -> Path:
    return model_dir(repo, name) / CONFIG_FILENAME


def version_dir(repo: Path, name: str, version: int) -> Path:
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    return model_dir(repo, name) / str(version)


def model_file(repo: Path, name: str, version: int, filename: str) -> Path:
    """REPO/NAME/VERSION/FILENAME: the serialised model of one version (``VersionInfo.file``)."""
    return version_dir(repo, name, version) / filename


def existing_versions(repo: Path, name: str) -> list[int]:
    """Version folders present on disk, ascending."""
    folder = model_dir(repo, name)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit())


def next_version(repo: Path, name: str) -> int:
    versions = existing_versions(repo, name)
    return versions[-1] + 1 if versions else 1


def model_names(repo: Path) -> list[str]:
    """Folders of the repository that hold a config.json, sorted."""
    root = Path(repo)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_FILENAME).is_file())


def model_folders(repo: Path) -> list[str]:
    """Every folder that is meant as a model, sorted: those with a config.json and every
    visible one without (a broken model is reported, not missed); the store loads these and
    the repository index lists them."""
    root = Path(repo)
    if not root.is_dir():
        return []
    visible = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return sorted(visible | set(model_names(root)))
