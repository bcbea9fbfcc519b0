"""Fixtures shared across the test packages."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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
