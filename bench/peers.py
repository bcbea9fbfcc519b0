"""The peer servers the service is measured against: LitServe, mosec and TorchServe, each from
a venv of its own (``make peers``: ``.venv-litserve``, ``.venv-mosec``, ``.venv-torchserve``),
so that no peer's requirements move the versions attnserve runs with, or another peer's.

Every peer runs ``bench/classifier.py``: the same TorchScript file loaded the same way, the
service's own pre-processing, the same top-5 answer and the same torch thread count, one JPEG
per request. Batching is set as issue 12 measured each: LitServe 16 / 10 ms, mosec 8 / 5 ms
with a decode stage of its own, TorchServe 16 / 10 ms. A peer whose venv is missing is skipped,
and the report says so.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.servers import ROOT, START_TIMEOUT_S, ServerProcess, free_port, peer_env, running

ARCHIVE_TIMEOUT_S = 300
LITSERVE_BATCH, LITSERVE_TIMEOUT_MS = 16, 10
MOSEC_BATCH, MOSEC_WAIT_MS = 8, 5
TORCHSERVE_BATCH, TORCHSERVE_DELAY_MS = 16, 10
TORCHSERVE_MODEL = "classifier"

Start = Callable[["Peer", Path, Path], AbstractContextManager[ServerProcess]]


@dataclass(frozen=True)
class Peer:
    name: str  # as in the tables
    package: str  # its PyPI distribution, whose version the report quotes
    path: str  # where it takes one JPEG per POST
    setup: str  # how it is configured, for the settings table
    start: Start

    @property
    def venv(self) -> Path:
        return ROOT / f".venv-{self.package}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def installed(self) -> bool:
        return self.python.exists()

    def version(self, package: str | None = None) -> str | None:
        """The version of ``package`` (default: the peer's own) in its venv, or None."""
        pattern = f"lib/python*/site-packages/{package or self.package}-*.dist-info/METADATA"
        for metadata in sorted(self.venv.glob(pattern)):
            for line in metadata.read_text().splitlines():
                if line.startswith("Version: "):
                    return line.removeprefix("Version: ").strip()
        return None

    def label(self) -> str:
        return f"{self.name} {self.version() or '?'}"

    def serve(self, model_dir: Path, log_dir: Path) -> AbstractContextManager[ServerProcess]:
        if not self.installed():
            raise FileNotFoundError(f"no {self.venv}: run `make peers`")
        return self.start(self, model_dir, log_dir)


@contextmanager
def litserve(peer: Peer, model_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """``bench/litserve_app.py``; ready when its inference worker has run ``setup``."""
    port = free_port()
    command = [str(peer.python), "-m", "bench.litserve_app", "--port", str(port),
               "--max-batch-size", str(LITSERVE_BATCH),
               "--batch-timeout-s", str(LITSERVE_TIMEOUT_MS / 1000)]  # fmt: skip
    with running(peer.label(), command, peer_env(model_dir), port, log_dir, "/health") as server:
        yield server


@contextmanager
def mosec(peer: Peer, model_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """``bench/mosec_app.py``; mosec answers ``/`` once its workers have started."""
    port = free_port()
    command = [str(peer.python), "-m", "bench.mosec_app", "--port", str(port),
               "--max-batch-size", str(MOSEC_BATCH),
               "--max-wait-ms", str(MOSEC_WAIT_MS)]  # fmt: skip
    with running(peer.label(), command, peer_env(model_dir), port, log_dir, "/") as server:
        yield server


def torchserve_archive(peer: Peer, model_dir: Path, store: Path) -> None:
    """The .mar: the model file and bench/torchserve_handler.py (the handler loads the model
    through ``bench/classifier.py`` as every peer does)."""
    store.mkdir(parents=True, exist_ok=True)
    archiver = peer.venv / "bin" / "torch-model-archiver"
    model_file = next(model_dir.glob("*/model.pt"))
    subprocess.run(
        [str(archiver), "--model-name", TORCHSERVE_MODEL, "--version", "1.0",
         "--serialized-file", str(model_file),
         "--handler", str(ROOT / "bench" / "torchserve_handler.py"),
         "--export-path", str(store), "--force"],
        check=True, capture_output=True, timeout=ARCHIVE_TIMEOUT_S,
    )  # fmt: skip


@contextmanager
def torchserve(peer: Peer, model_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """``torchserve --foreground`` with one worker; its ``/ping`` says Healthy (200) once the
    worker has loaded the model. Token authorisation is off, as for every other peer."""
    work = log_dir / "torchserve"
    torchserve_archive(peer, model_dir, work / "store")
    port, management, metrics = free_port(), free_port(), free_port()
    model = {"1.0": {"defaultVersion": True, "marName": f"{TORCHSERVE_MODEL}.mar",
                     "minWorkers": 1, "maxWorkers": 1, "batchSize": TORCHSERVE_BATCH,
                     "maxBatchDelay": TORCHSERVE_DELAY_MS, "responseTimeout": 120}}  # fmt: skip
    config = work / "config.properties"
    config.write_text(
        "\n".join([
            f"inference_address=http://127.0.0.1:{port}",
            f"management_address=http://127.0.0.1:{management}",
            f"metrics_address=http://127.0.0.1:{metrics}",
            f"model_store={work / 'store'}",
            f"load_models={TORCHSERVE_MODEL}.mar",
            f"models={json.dumps({TORCHSERVE_MODEL: model})}",
            "disable_token_authorization=true",
            "install_py_dep_per_model=false",
            "default_workers_per_model=1",
        ]) + "\n"
    )  # fmt: skip
    command = [str(peer.venv / "bin" / "torchserve"), "--start", "--foreground", "--ncs",
               "--ts-config", str(config), "--model-store", str(work / "store")]  # fmt: skip
    # java and the worker's python from the peer's venv; ``bench`` importable by the handler
    # its own logs beside the others (its default is ./logs in the checkout)
    env = {**peer_env(model_dir), "PYTHONPATH": str(ROOT),
           "PATH": f"{peer.venv / 'bin'}:/usr/bin:/bin",
           "LOG_LOCATION": str(work / "logs"), "METRICS_LOCATION": str(work / "logs")}  # fmt: skip
    with running(peer.label(), command, env, port, log_dir, "/ping") as server:
        wait_for_worker(server, management)
        yield server


def wait_for_worker(server: ServerProcess, management: int) -> None:
    """``/ping`` says Healthy before the worker has loaded the model: wait until the
    management API reports the worker READY (bounded)."""
    url = f"http://127.0.0.1:{management}/models/{TORCHSERVE_MODEL}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                workers = json.loads(response.read())[0].get("workers", [])
            if any(worker.get("status") == "READY" for worker in workers):
                return
        except (OSError, ValueError, IndexError):
            pass
        if server.process.poll() is not None:
            break
        time.sleep(0.2)
    raise TimeoutError(f"{server.name}: no worker READY; see {server.log_path}")


PEERS = (
    Peer(
        "LitServe", "litserve", "/predict",
        f"bench/litserve_app.py: 1 API server + 1 inference worker process, batch "
        f"{LITSERVE_BATCH} / {LITSERVE_TIMEOUT_MS} ms",
        litserve,
    ),
    Peer(
        "mosec", "mosec", "/predict",
        f"bench/mosec_app.py: a decode stage (1 process) and an inference stage (1 process), "
        f"batch {MOSEC_BATCH} / {MOSEC_WAIT_MS} ms",
        mosec,
    ),
    Peer(
        "TorchServe", "torchserve", f"/predictions/{TORCHSERVE_MODEL}",
        f"bench/torchserve_handler.py: 1 worker, batch {TORCHSERVE_BATCH} / "
        f"{TORCHSERVE_DELAY_MS} ms, token authorisation off",
        torchserve,
    ),
)  # fmt: skip
