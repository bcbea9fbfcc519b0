"""Parts 2-3 side by side, against two real stub servers: the admitted servers stay stopped
except for their own runs, the loads take turns across the servers round by round, the
in-process references get a turn after every round with every server stopped, and the servers
can be stopped at the end."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

from bench import servers
from bench.loadgen import HttpRequest
from bench.scenarios import Load, Scenario
from bench.side_by_side import Entry, continued, lineup, run_side_by_side

STUB = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the load loops expect

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""
SIGNAL_SETTLE_S = 2.0
GET = Scenario("get", "m", "predict", HttpRequest("GET", "/"))


def stub(stack: ExitStack, name: str, log_dir: Path) -> servers.ServerProcess:
    port = servers.free_port()
    command = [sys.executable, "-c", STUB, str(port)]
    return stack.enter_context(servers.running(name, command, {}, port, log_dir, "/"))


def states(server: servers.ServerProcess) -> set[str]:
    """The scheduler states of the server's processes (T: stopped)."""
    found = set()
    for pid in server.pids():
        with open(f"/proc/{pid}/stat") as stat:
            found.add(stat.read().rsplit(")", 1)[1].split()[0])
    return found


def settles(server: servers.ServerProcess, *, stopped: bool) -> bool:
    """Whether every process of the server comes to be stopped (``stopped``) or none of them
    does, within SIGNAL_SETTLE_S: SIGSTOP and SIGCONT land asynchronously, so a process read
    at once may still be in its old state."""
    deadline = time.monotonic() + SIGNAL_SETTLE_S
    while True:
        found = states(server)
        if (found == {"T"}) if stopped else ("T" not in found):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)


def test_admitted_servers_stay_stopped_except_for_their_own_runs(tmp_path: Path) -> None:
    with ExitStack() as stack:
        with lineup(stack) as admit:
            first = admit(stub(stack, "first", tmp_path))
            second = admit(stub(stack, "second", tmp_path))
            assert settles(first, stopped=True) and settles(second, stopped=True)
            with continued(first):
                assert settles(first, stopped=False) and settles(second, stopped=True)
                assert first.get("/")[0] == 200
            assert settles(first, stopped=True)
        # continued, so that SIGTERM can stop them
        assert settles(first, stopped=False) and settles(second, stopped=False)
        processes = [first.process, second.process]
    assert all(process.poll() is not None for process in processes)


def test_the_loads_take_turns_across_the_servers_round_by_round(tmp_path: Path) -> None:
    lines: list[str] = []
    with ExitStack() as stack, lineup(stack) as admit:
        first = admit(stub(stack, "first", tmp_path))
        second = admit(stub(stack, "second", tmp_path))
        one, two = Load(concurrency=1), Load(concurrency=2)
        entries = [
            Entry(first, [(GET, one, 2), (GET, two, 1)], False),
            Entry(second, [(GET, two, 2)], False),
        ]
        during_turns: list[bool] = []  # whether both servers were stopped at each turn

        def reference_turn() -> None:
            during_turns.append(settles(first, stopped=True) and settles(second, stopped=True))

        cells = run_side_by_side(entries, 0.2, 0.05, 1_000, lines.append, reference_turn)
    assert during_turns == [True, True]  # once per round, every server stopped
    order = [(line.split()[1], line.split()[3]) for line in lines]
    assert order == [
        ("first", "c=1"), ("first", "c=2"), ("second", "c=2"),  # round 1
        ("first", "c=1"), ("second", "c=2"),  # round 2: first's c=2 ran once
    ]  # fmt: skip
    assert [[len(cell.runs) for cell in entry] for entry in cells] == [[2, 1], [2]]
    for cell in (cell for entry in cells for cell in entry):
        assert all(run.ok > 0 and run.error_count == 0 for run in cell.runs)  # it was running
