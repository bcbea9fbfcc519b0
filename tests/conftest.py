"""Fixtures shared across the test packages."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

DEMO_BUILD_TIMEOUT_S = 1200


@dataclass(frozen=True)
class DemoBuild:
    repo: Path
    output: str


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> DemoBuild:
    """The demo repository, built once per session by the real ``attnserve demo build``."""
    repo = tmp_path_factory.mktemp("demo") / "repo"
    command = [str(Path(sys.executable).parent / "attnserve"), "demo", "build", "--repo", str(repo)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=DEMO_BUILD_TIMEOUT_S, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return DemoBuild(repo=repo, output=result.stdout)
