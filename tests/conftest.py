"""Fixtures shared across the test packages."""

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.server import DemoServers, Server

DEMO_BUILD_TIMEOUT_S = 300
ATTNSERVE = str(Path(sys.executable).parent / "attnserve")


@dataclass(frozen=True)
class DemoBuild:
    repo: Path
    output: str


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> DemoBuild:
    """The demo repository, exported once per session by the real ``attnserve demo build``
    from the shipped weights (seconds, no training), so every test that serves the demo
    models runs on the same weights on every machine."""
    repo = tmp_path_factory.mktemp("demo") / "repo"
    result = subprocess.run(
        [ATTNSERVE, "demo", "build", "--repo", str(repo)],
        capture_output=True,
        text=True,
        timeout=DEMO_BUILD_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
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
