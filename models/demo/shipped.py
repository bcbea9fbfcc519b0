"""The demo models' trained weights, shipped in the repository with a manifest.

Training is seeded but not bit-reproducible across machines (BLAS kernels and thread counts
change the rounding), so a demo model retrained on every machine would score a little
differently everywhere. Instead each trained ``state_dict`` is kept in ``models/demo/weights/``
beside ``manifest.json``, which records per model its file's sha256, the held-out metrics, the
training seed, the architecture, the torch version and the date. ``attnserve demo build``
exports from these files (after checking the sha256: a file that does not match is refused),
and ``attnserve demo build --train`` rewrites them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn

from models.repository.formats import sha256_of

WEIGHTS_DIR = Path(__file__).parent / "weights"
"""The shipped weights: one ``NAME.pt`` per demo model and ``manifest.json``."""

MANIFEST = "manifest.json"


class WeightsError(RuntimeError):
    """Shipped weights are missing, altered or do not match the manifest; the message says how."""


@dataclass(frozen=True)
class WeightsEntry:
    """One model's record in the manifest."""

    file: str
    sha256: str
    architecture: str
    seed: int
    torch_version: str
    trained_at: str
    train_seconds: float
    metrics: dict[str, float]


def read_manifest(directory: Path) -> dict[str, WeightsEntry]:
    """Every model's entry, by model name; an absent manifest is a clear error."""
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text())
        return {name: WeightsEntry(**entry) for name, entry in raw.items()}
    except FileNotFoundError:
        raise WeightsError(
            f"no demo weights manifest at {path}: run `attnserve demo build --train` to train "
            "the demo models, or pass --weights DIR"
        ) from None
    except (ValueError, TypeError, AttributeError) as error:
        raise WeightsError(f"unreadable demo weights manifest {path}: {error}") from None


def save_weights(
    directory: Path,
    name: str,
    model: nn.Module,
    *,
    architecture: str,
    seed: int,
    train_seconds: float,
    metrics: dict[str, float],
) -> WeightsEntry:
    """Write ``NAME.pt`` (the state dict) and update ``NAME``'s entry in the manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    torch.save(model.state_dict(), path)
    entry = WeightsEntry(
        file=path.name,
        sha256=sha256_of(path),
        architecture=architecture,
        seed=seed,
        torch_version=torch.__version__,
        trained_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        train_seconds=round(train_seconds, 1),
        metrics=metrics,
    )
    manifest = read_manifest(directory) if (directory / MANIFEST).is_file() else {}
    manifest[name] = entry
    text = json.dumps({k: asdict(v) for k, v in sorted(manifest.items())}, indent=2)
    (directory / MANIFEST).write_text(text + "\n")
    return entry


def load_weights(
    directory: Path, name: str, architecture: str
) -> tuple[dict[str, Tensor], WeightsEntry]:
    """``NAME``'s verified state dict and manifest entry.

    The file must exist, hash to the manifest's sha256 and have been trained for
    ``architecture``; anything else is refused before a byte of it is unpickled."""
    manifest = read_manifest(directory)
    if name not in manifest:
        raise WeightsError(f"the demo weights manifest in {directory} has no entry for {name!r}")
    entry = manifest[name]
    if entry.architecture != architecture:
        raise WeightsError(
            f"demo weights {name!r} were trained for {entry.architecture!r}, not {architecture!r}:"
            " retrain them with `attnserve demo build --train`"
        )
    path = Path(directory) / entry.file
    if not path.is_file():
        raise WeightsError(f"demo weights file {path} is missing")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise WeightsError(
            f"demo weights {path} have sha256 {actual}, but the manifest says {entry.sha256}: "
            "the file was altered or replaced; restore it (git checkout) or retrain with "
            "`attnserve demo build --train`"
        )
    return torch.load(path, map_location="cpu", weights_only=True), entry
