"""The TorchServe peer's handler: the baseline's work (``bench/classifier.py``: the same
TorchScript file, pre-processing and top-5 answer) for each batch TorchServe's frontend hands
its Python worker. Archived into the model's .mar by ``bench/peers.py``; the worker finds
``bench`` through the ``PYTHONPATH`` the benchmark gives the server.

TorchServe instantiates the one class defined here, calls ``initialize`` once and ``handle``
per batch (a list of requests: the frontend parses each multipart body into a dict of its
parts, and the ``file`` part is the JPEG).
"""

from __future__ import annotations

from typing import Any

import torch

from bench import classifier


class ClassifierHandler:
    def __init__(self) -> None:
        self.classifier: classifier.Classifier | None = None

    def initialize(self, context: Any) -> None:
        batch_size = int(context.system_properties.get("batch_size", 1))
        self.classifier = classifier.from_environment(range(1, batch_size + 1))

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[dict[str, object]]:
        assert self.classifier is not None, "initialize() runs first"
        jpegs = [bytes(request["file"]) for request in data]  # the multipart body's part
        inputs = torch.stack([self.classifier.preprocess(jpeg) for jpeg in jpegs])
        logits = self.classifier.forward(inputs)
        return [self.classifier.answer(row) for row in logits]
