"""Fixtures shared across the test packages."""

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.server import DemoServers, Server

DEMO_BUILD_TIMEOUT_S = 1200


@dataclass(frozen=True)
class DemoBuild:
    repo: Path
    output: str


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> DemoBuild:
    """The demo repository, built once per session by the real ``attnserve demo build``.

    For quicker local iterations, ``ATTNSERVE_TEST_DEMO_BUILD=DIR`` reuses (or creates) a build
    in DIR, with its output saved beside it; CI never sets it."""
    reuse = os.environ.get("ATTNSERVE_TEST_DEMO_BUILD")
    if reuse:
        output_file = Path(reuse) / "build-output.txt"
        if output_file.is_file():
            return DemoBuild(repo=Path(reuse) / "repo", output=output_file.read_text())
    repo = (Path(reuse) if reuse else tmp_path_factory.mktemp("demo")) / "repo"
    command = [str(Path(sys.executable).parent / "attnserve"), "demo", "build", "--repo", str(repo)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEMO_BUILD_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if reuse:
        (Path(reuse) / "build-output.txt").write_text(result.stdout)
    return DemoBuild(repo=repo, output=result.stdout)


@pytest.fixture(scope="session")
def demo_servers(
    demo_build: DemoBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoServers]:
    """Every server on the demo repository starts here (see :class:`DemoServers`)."""
    servers = DemoServers(demo_build.repo, tmp_path_factory.mktemp("demo-server-logs"))
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def demo_server(demo_servers: DemoServers) -> Server:
    """The shared demo server, with the default settings."""
    return demo_servers.shared()
