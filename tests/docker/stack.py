"""One compose project of the live test: compose.yaml with the documented substitutions only,
published on 127.0.0.1 at ephemeral ports, and the local sources it builds from.

Where no registry is reachable (this machine), docker/local/build-bases.sh builds the base
images and the host's own torch wheel is served on loopback for the image build (which then
runs on the host network, ``ATTNSERVE_BUILD_NETWORK=host``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.servers import free_port, terminate
from tests.docker import tools

COMPOSE_FILE = tools.ROOT / "compose.yaml"
BUILD_BASES = tools.DOCKER / "local" / "build-bases.sh"
BASES_TIMEOUT_S = 900
BUILD_TIMEOUT_S = 1800
COMMAND_TIMEOUT_S = 300
SERVER_START_TIMEOUT_S = 10.0
POLL_S = 1.0
#: the container port each published service listens on
PORTS = {"attnserve": 8000, "prometheus": 9090, "balancer": 8080}
#: the gRPC container port of those that also speak gRPC
GRPC_PORTS = {"attnserve": 8001, "balancer": 8081}


def local_bases(env: dict[str, str]) -> dict[str, str]:
    """Builds (or reuses, by content hash) the local base images; their substitutions."""
    result = subprocess.run(
        ["bash", str(BUILD_BASES)],
        capture_output=True,
        text=True,
        env=env,
        timeout=BASES_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, tools.output(result)
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def torch_wheels() -> Path | None:
    """The folder of wheels pip's own configuration on this machine names as find-links (where
    the torch CPU wheel lies), if it holds one."""
    result = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    folders = [os.environ.get("PIP_FIND_LINKS", "")]
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            folders += value.strip("'\"").split()
    for folder in filter(None, folders):
        path = Path(folder.removeprefix("file://"))
        if path.is_dir() and any(path.glob("torch-*+cpu-*.whl")):
            return path
    return None


@contextmanager
def wheel_server(folder: Path, port: int) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a find-links URL), stopped by its PID: on ``port``
    when it is free (the URL is part of the image build's cache key), else on any port."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "no wheel server"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/"
    finally:
        terminate(process)


@dataclass
class Stack:
    """``docker compose`` on one project, with the substitutions in ``env``."""

    env: dict[str, str]
    project: str = "attnserve-live-test"
    files: list[Path] = field(default_factory=lambda: [COMPOSE_FILE])

    def compose(
        self, *args: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--project-name", self.project]
        command += ["--project-directory", str(tools.ROOT)]
        for file in self.files:
            command += ["-f", str(file)]
        return self.run([*command, *args], timeout, check)

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", *args], COMMAND_TIMEOUT_S, check)

    def run(
        self, command: list[str], timeout: float, check: bool
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=tools.ROOT,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, tools.output(result)
        return result

    def config(self) -> dict:
        return json.loads(self.compose("config", "--format", "json").stdout)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "--quiet", service).stdout.split()

    def url(self, service: str, index: int = 1) -> str:
        """The service's published address on 127.0.0.1 (replica ``index``)."""
        published = self.compose("port", "--index", str(index), service, str(PORTS[service]))
        host, _, port = published.stdout.strip().rpartition(":")
        assert host == "127.0.0.1", published.stdout
        return f"http://127.0.0.1:{port}"

    def grpc_address(self, service: str) -> str:
        """host:port of the service's published gRPC port on 127.0.0.1."""
        published = self.compose("port", service, str(GRPC_PORTS[service]))
        host, _, port = published.stdout.strip().rpartition(":")
        assert host == "127.0.0.1", published.stdout
        return f"127.0.0.1:{port}"

    def health(self, container: str) -> str:
        inspect = self.docker("inspect", "--format", "{{.State.Health.Status}}", container)
        return inspect.stdout.strip()

    def wait_healthy(self, service: str, count: int, timeout_s: float) -> list[str]:
        """The service's ``count`` containers once every one is healthy (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            containers = self.containers(service)
            states = [self.health(container) for container in containers]
            if len(containers) == count and set(states) == {"healthy"}:
                return containers
            assert time.monotonic() < deadline, f"{service}: {states}\n{self.logs(service)}"
            time.sleep(POLL_S)

    def exec_status(self, container: str, command: list[str]) -> int:
        """Exit status of ``command`` run inside ``container``."""
        return self.docker("exec", container, *command, check=False).returncode

    def logs(self, service: str = "") -> str:
        result = self.compose("logs", "--no-color", "--tail", "40", *filter(None, [service]))
        return result.stdout + result.stderr

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False)
