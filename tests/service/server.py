"""A real attnserve process for tests: uvicorn on 127.0.0.1, a free port, stopped by its PID.

:class:`DemoServers` is the one place a server on the demo repository is started (the
session's ``demo_servers`` and ``demo_server`` fixtures, in tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.servers import free_port, terminate

START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 60.0
POLL_S = 0.05


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)

    def wait_until(self, path: str, status: int = 200, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + path, timeout=2.0).status_code == status:
                    return
            except httpx.TransportError:
                pass
            time.sleep(POLL_S)
        raise TimeoutError(f"{path} never answered {status} in {timeout_s} s:\n{self.log()}")

    def wait_loaded(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until the initial load has finished, whatever its outcome (broken models included)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            response = httpx.get(self.url + "/readyz", timeout=2.0)
            if response.json()["status"] != "loading":
                return
            time.sleep(POLL_S)
        raise TimeoutError(f"models still loading after {timeout_s} s:\n{self.log()}")

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        text = httpx.get(self.url + "/metrics", timeout=5.0).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    total += sample.value
        return total

    def wait_for_metric(
        self, name: str, expected: float, timeout_s: float = 10.0, **labels: str
    ) -> float:
        """``name``'s value once it equals ``expected`` (a counter that rises to it, a gauge that
        falls to it), or its value after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (value := self.metric(name, **labels)) != expected and time.monotonic() < deadline:
            time.sleep(POLL_S)
        return value

    def stop(self) -> int:
        """SIGTERM, wait for the drain and exit; kill only if it hangs. Returns the exit code."""
        return terminate(self.process, STOP_TIMEOUT_S)


@contextmanager
def running_server(
    repo: Path, log_dir: Path, env: dict[str, str] | None = None, wait: str = "ready"
) -> Iterator[Server]:
    """``wait``: "ready" (every model warm), "loaded" (loading over, some may be broken), or
    "alive" (the process answers /healthz)."""
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    command = [str(Path(sys.executable).parent / "attnserve"), "serve", "--repo", str(repo)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    environment = {**os.environ, "ATTNSERVE_NUM_THREADS": "2", **(env or {})}
    with open(log_path, "w") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=environment, text=True
        )
    server = Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    try:
        server.wait_until("/healthz")
        if wait == "ready":
            server.wait_until("/readyz")
        elif wait == "loaded":
            server.wait_loaded()
        yield server
    finally:
        server.stop()


class DemoServers:
    """Servers on the demo repository: one shared server per distinct environment, started on
    first use and stopped at the end of the session, or a private one for a test that needs a
    fresh process (counters from zero)."""

    def __init__(self, repo: Path, log_dir: Path) -> None:
        self.repo = repo
        self.log_dir = log_dir
        self._shared: dict[tuple[tuple[str, str], ...], Server] = {}
        self._stack = ExitStack()

    def shared(self, env: dict[str, str] | None = None) -> Server:
        key = tuple(sorted((env or {}).items()))
        if key not in self._shared:
            self._shared[key] = self._stack.enter_context(self.private(env))
        return self._shared[key]

    def private(self, env: dict[str, str] | None = None) -> AbstractContextManager[Server]:
        return running_server(self.repo, self.log_dir, env)

    def close(self) -> None:
        self._stack.close()
