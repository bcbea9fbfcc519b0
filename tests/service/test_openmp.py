"""The OpenMP wait policy reaches ``attnserve serve`` before torch loads, and only where the
environment leaves it unset; applying it once torch is loaded (when libgomp has read it
already) is refused."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.openmp import apply_defaults

# ``attnserve serve`` with the server module replaced by one that reports what it was given
PROBE = """
import os, sys, types
def serve(settings):
    print(os.environ.get("OMP_WAIT_POLICY"), "torch" in sys.modules)
sys.modules["service.http.server"] = types.SimpleNamespace(serve=serve)
from service.cli import main
main(["serve"])
"""


def served_policy(**env: str) -> str:
    base = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env={**base, **env},
        timeout=120, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_serve_waits_passively_unless_the_environment_says_otherwise() -> None:
    assert served_policy() == "PASSIVE False"  # set, and torch not yet loaded
    assert served_policy(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"


def test_applying_it_after_torch_is_loaded_is_refused() -> None:
    import torch  # noqa: F401  (libgomp has now read its variables)

    environ: dict[str, str] = {}
    with pytest.raises(RuntimeError, match="before torch"):
        apply_defaults(environ)
    assert environ == {}
