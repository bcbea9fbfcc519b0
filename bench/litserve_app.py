"""The LitServe peer: the baseline's work (``bench/classifier.py``: the same TorchScript file,
pre-processing and top-5 answer) behind LitServe, configured as issue 12 measured it: batches
of up to 16 requests, 10 ms to fill one (``bench/peers.py`` passes both), one inference worker,
one JPEG per request, as the ``file`` part of a multipart body.

It runs in ``.venv-litserve`` (``make peers``), never in the project's venv: LitServe's own
requirements (fastapi, ``uvicorn[standard]``, pyzmq ranges) must not move the versions that
attnserve is measured with.
Run: ``.venv-litserve/bin/python -m bench.litserve_app --port PORT`` (``BENCH_*`` as for the
baseline).

No ``from __future__ import annotations`` here: LitServe reads ``decode_request``'s annotation
at runtime and gives it to FastAPI as the endpoint's parameter type, so it must be a real type.
"""

import argparse
import os
import signal
from collections.abc import Sequence
from typing import Annotated

import litserve
import torch
from fastapi import File

from bench import classifier

HOST = "127.0.0.1"

# LitServe gives ``decode_request``'s ``request`` annotation to FastAPI as the endpoint's
# parameter: here the bytes of the multipart body's ``file`` part (the alias names the part),
# parsed in the API server process and sent on to the inference worker.
JpegUpload = Annotated[bytes, File(alias="file")]


class ClassifierAPI(litserve.LitAPI):
    """``decode_request`` and ``encode_response`` run per request, the rest per batch, all in
    LitServe's inference worker process."""

    def setup(self, device: str) -> None:
        self.classifier = classifier.from_environment(range(1, self.max_batch_size + 1))

    def decode_request(self, request: JpegUpload) -> torch.Tensor:
        return self.classifier.preprocess(request)

    def batch(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(inputs)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.forward(x)

    def unbatch(self, output: torch.Tensor) -> list[torch.Tensor]:
        return list(output)

    def encode_response(self, output: torch.Tensor) -> dict[str, object]:
        return self.classifier.answer(output)


def stop_gracefully_on_sigterm() -> None:
    """SIGTERM as Ctrl-C: ``LitServer.run`` stops its worker processes on a KeyboardInterrupt
    only, and a plain SIGTERM would leave them running. Its forked HTTP server process inherits
    the handler and, once uvicorn has shut down, re-raises the SIGTERM it caught: there it
    simply exits."""
    main_pid = os.getpid()

    def handler(signum: int, frame: object) -> None:
        if os.getpid() == main_pid:
            raise KeyboardInterrupt
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, handler)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.litserve_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-timeout-s", type=float, default=0.005)
    args = parser.parse_args(argv)
    api = ClassifierAPI(max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout_s)
    server = litserve.LitServer(api, accelerator="cpu", workers_per_device=1)
    stop_gracefully_on_sigterm()
    # ``host`` binds the listening socket (its default is 0.0.0.0); no client.py in the cwd.
    server.run(host=HOST, port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
