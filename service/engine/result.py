"""The one result type: what the runtime computes for one image (with its forward pass's stage
times), completed on its way out by the batcher (queue and compute times) and the pipeline
(pre-processing time, original size)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from service.engine.statistics import Execution


@dataclass(frozen=True)
class Result:
    output: torch.Tensor  # this image's logits, no batch dim, CPU
    maps: dict[str, torch.Tensor] = field(default_factory=dict)  # its maps, no batch dim
    batch_size: int = 1  # size of the forward pass that produced it
    queue_ms: float = 0.0  # from submit to the start of its batch's compute
    inference_ms: float = 0.0  # its batch's compute time (stack + forward + split)
    preprocess_ms: float = 0.0  # decode and pre-processing (0 for a tensor)
    original_size: tuple[int, int] | None = None  # (height, width) of an uploaded image
    execution: Execution | None = None  # the forward pass that computed it (its stage times)
