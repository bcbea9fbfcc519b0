"""The benchmark classifier as every peer (the hand-written baseline, bench/peers.py's) runs it.

One copy for every peer, so that they load the same TorchScript file the same way as the
service (``TorchScriptFormat().load``), pre-process with the service's own code
(``service.imaging.load_for_model``) and answer the same top-5: a difference between the peers'
rows is then their servers', not their model code's.

Configured by ``BENCH_BASELINE_MODEL_DIR`` (a model folder: config.json + VERSION/model.pt) and
``BENCH_TORCH_THREADS``, which the bench sets for every peer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from models.repository.config import ModelConfig, read_config
from models.repository.formats import ServableModel, get_format
from models.repository.layout import DEMO_REPOSITORY, config_path, model_file
from service.imaging import load_for_model

MAX_PIXELS = 40_000_000
TOP_K = 5
DEFAULT_MODEL_DIR = DEMO_REPOSITORY / "shapes-classifier"


@dataclass(frozen=True)
class Classifier:
    config: ModelConfig
    model: ServableModel

    def preprocess_upload(self, body: bytes) -> torch.Tensor:
        """A multipart/form-data body whose first part is the JPEG -> the model's input."""
        return self.preprocess(first_part(body))

    def preprocess(self, data: bytes) -> torch.Tensor:
        """JPEG bytes -> the model's (3, H, W) input, exactly as the service prepares it."""
        tensor, _ = load_for_model(data, self.config.input, max_pixels=MAX_PIXELS)
        return tensor

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(batch)

    def top_k(self, logits: torch.Tensor) -> list[dict[str, object]]:
        """One image's logits -> its ``TOP_K`` most likely labels, softmax scores."""
        scores, indices = logits.softmax(0).topk(min(TOP_K, logits.numel()))
        return [
            {"index": i, "label": self.config.labels[i], "score": s}
            for s, i in zip(scores.tolist(), indices.tolist(), strict=True)
        ]

    def answer(self, logits: torch.Tensor) -> dict[str, object]:
        """The response body of one image, the same for every peer."""
        return {"model": self.config.name, "predictions": self.top_k(logits)}

    def warm_up(self, batch_sizes: Iterable[int]) -> None:
        """Twice per batch size: the profiling executor specialises on its first calls, and
        those seconds belong to start-up, not to the first measured requests."""
        spec = self.config.input
        for size in batch_sizes:
            for _ in range(2):
                self.forward(torch.zeros(size, 3, spec.height, spec.width))


def first_part(body: bytes) -> bytes:
    """The content of a multipart/form-data body's first part, for a peer whose framework hands
    over the raw body only (mosec): the body's first line is the boundary's delimiter, a blank
    line ends the part's headers, and the delimiter again ends its content."""
    delimiter, _, rest = body.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    end = content.find(b"\r\n" + delimiter)
    if not delimiter.startswith(b"--") or end < 0:
        raise ValueError("not a multipart/form-data body")
    return content[:end]


def load(model_dir: Path, warm_batch_sizes: Iterable[int] = (1,)) -> Classifier:
    repo, name = model_dir.parent, model_dir.name
    config = read_config(config_path(repo, name))
    version = config.latest_version
    if version is None:
        raise ValueError(f"{model_dir} has no version in its config.json")
    info = config.versions[version]
    path = model_file(repo, name, version, info.file)
    classifier = Classifier(config, get_format(info.format).load(path, torch.device("cpu")))
    classifier.warm_up(warm_batch_sizes)
    return classifier


def from_environment(warm_batch_sizes: Iterable[int] = (1,)) -> Classifier:
    """The model and thread count the bench chose for this peer (see the module docstring)."""
    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "2")))
    model_dir = Path(os.environ.get("BENCH_BASELINE_MODEL_DIR", DEFAULT_MODEL_DIR))
    return load(model_dir, warm_batch_sizes)
