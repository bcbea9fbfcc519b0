"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): a bounded
run against a live server, with no 5xx and every documented response matching its schema."""

import subprocess
import sys
from pathlib import Path

from tests.service.server import Server

MAX_EXAMPLES = 25
SEED = 20261121
TIMEOUT_S = 300


def test_no_server_errors_and_responses_match_the_schema(
    demo_server: Server, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "run",
        f"{demo_server.url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1], output[-2000:]
