"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis): a bounded
run against a live server, with no 5xx and every documented response matching its schema."""

import subprocess
import sys
from pathlib import Path

from tests.service.server import Server

MAX_EXAMPLES = 25
SEED = 20261121
TIMEOUT_S = 300
# Now that the spec declares /predict's body, the fuzzer sends real images, and with a
# timeout_ms it drew near 0 the documented answer is 504 deadline_exceeded: the client's own
# deadline, not a server error. Every other 5xx still fails the run.
CONFIG = """
[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "504"]
"""


def test_no_server_errors_and_responses_match_the_schema(
    demo_server: Server, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
        f"{demo_server.url}/openapi.json",
        "--checks", "not_a_server_error,response_schema_conformance",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert " passed" in output and "failed" not in output.split("SUMMARY")[-1], output[-2000:]
