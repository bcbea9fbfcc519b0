"""The mosec peer: the baseline's work (``bench/classifier.py``) behind mosec's Rust HTTP layer,
configured as issue 12 measured it: a decode stage of its own (one process) feeding an
inference stage that batches up to 8 images, waiting at most 5 ms (``bench/servers.py`` passes
both), one JPEG per request on ``POST /predict``, as the ``file`` part of a multipart body.

It runs in ``.venv-mosec`` (``make peers``), never in the project's venv, like every peer.
Run: ``.venv-mosec/bin/python -m bench.mosec_app --port PORT --max-batch-size 8
--max-wait-ms 5`` (``BENCH_*`` as for the baseline). mosec parses its own command line, so
this module reads its options from the environment it sets for itself.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
from collections.abc import Sequence
from typing import Any

import torch
from mosec import Server, Worker

from bench import classifier

HOST = "127.0.0.1"
ROUTE = "/predict"


class PickledIPC:
    """Tensors between the two stages: mosec's default IPC is JSON, which cannot carry them."""

    def serialize_ipc(self, data: Any) -> bytes:
        return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)

    def deserialize_ipc(self, data: bytes) -> Any:
        return pickle.loads(data)


class Decode(PickledIPC, Worker):
    """A multipart body -> its JPEG part -> the model's (3, H, W) input, one request at a time,
    in its own process (mosec hands a worker the body only, so the part is found by hand)."""

    def __init__(self) -> None:
        super().__init__()
        self.classifier = classifier.from_environment([])

    def deserialize(self, data: bytes) -> bytes:
        return data  # the raw multipart body, not JSON

    def forward(self, data: bytes) -> torch.Tensor:
        return self.classifier.preprocess_upload(data)


class Infer(PickledIPC, Worker):
    """A batch of inputs -> one top-5 answer each (JSON, mosec's default response)."""

    def __init__(self) -> None:
        super().__init__()
        sizes = range(1, int(os.environ["BENCH_MOSEC_MAX_BATCH_SIZE"]) + 1)
        self.classifier = classifier.from_environment(sizes)

    def forward(self, data: list[torch.Tensor]) -> list[dict[str, object]]:
        logits = self.classifier.forward(torch.stack(data))
        return [self.classifier.answer(row) for row in logits]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mosec_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ["BENCH_MOSEC_MAX_BATCH_SIZE"] = str(args.max_batch_size)
    # mosec reads sys.argv itself: only its own options from here on
    sys.argv = [sys.argv[0], "--address", HOST, "--port", str(args.port), "--log-level", "warning"]
    server = Server()
    server.append_worker(Decode, num=1, route=ROUTE)
    server.append_worker(
        Infer, num=1, max_batch_size=args.max_batch_size, max_wait_time=args.max_wait_ms,
        route=ROUTE,
    )  # fmt: skip
    server.run()


if __name__ == "__main__":
    main()
