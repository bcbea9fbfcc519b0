"""The servers under test, each a real subprocess on 127.0.0.1 at a free port, in a process
group of its own, stopped by its own PID (SIGTERM, then SIGKILL only if it hangs); whatever it
leaves in its group (a peer's worker processes) is stopped after it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.machine import group_pids

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
GROUP_STOP_TIMEOUT_S = 10.0
TORCH_THREADS = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def terminate(process: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> int:
    """SIGTERM (attnserve drains), SIGKILL only if it hangs; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def stop_group(pgid: int, timeout_s: float = GROUP_STOP_TIMEOUT_S) -> None:
    """SIGTERM to what is left of process group ``pgid``, then SIGKILL to what outlives
    ``timeout_s``; returns once the group is empty, or ``timeout_s`` after the SIGKILL."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + timeout_s
        try:
            os.killpg(pgid, signum)
            while time.monotonic() < deadline:
                os.killpg(pgid, 0)  # ProcessLookupError once no process is left in the group
                time.sleep(0.05)
        except ProcessLookupError:
            return


@dataclass
class ServerProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server and every process it started (they share its process group)."""
        return group_pids(self.pid) or [self.pid]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=timeout_s) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def wait_ready(self, path: str, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode}; see "
                    f"{self.log_path}:\n{self.log_path.read_text()[-3000:]}"
                )
            try:
                if self.get(path, timeout_s=2.0)[0] == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {timeout_s} s; see {self.log_path}")

    def stop(self) -> None:
        terminate(self.process)
        stop_group(self.pid)


@contextmanager
def running(
    name: str, command: list[str], env: dict[str, str], port: int, log_dir: Path, ready_path: str
) -> Iterator[ServerProcess]:
    log_path = log_dir / f"{name.replace(' ', '-')}-{port}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, **env},
            start_new_session=True,  # its own process group, so that its workers can be found
        )
    server = ServerProcess(name, port, process, log_path)
    try:
        server.wait_ready(ready_path)
        yield server
    finally:
        server.stop()


@contextmanager
def attnserve(
    repo: Path, log_dir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """``attnserve serve`` with its defaults, except 2 torch threads and the CPU."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--repo",
        str(repo),
        "--host",
        HOST,
        "--port",
        str(port),
        "--device",
        "cpu",
    ]
    env = {"ATTNSERVE_NUM_THREADS": str(TORCH_THREADS), **(extra_env or {})}
    with running("attnserve", command, env, port, log_dir, "/readyz") as server:
        yield server


@contextmanager
def baseline(model_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """``bench/baseline_app.py`` under uvicorn's defaults (one worker; uvloop and httptools
    when installed, as for attnserve)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.baseline_app:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    with running("baseline", command, peer_env(model_dir), port, log_dir, "/healthz") as server:
        yield server


def peer_env(model_dir: Path) -> dict[str, str]:
    """What ``bench/classifier.py`` reads: the model and the torch threads, as for attnserve."""
    return {"BENCH_BASELINE_MODEL_DIR": str(model_dir), "BENCH_TORCH_THREADS": str(TORCH_THREADS)}
