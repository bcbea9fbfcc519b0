"""Triton's classification extension, for HTTP v2 and gRPC alike: an output requested with the
parameter ``classification: k`` comes back as BYTES ``[N, k]`` of ``"score:index:label"``
strings, each item's k largest values, largest first (``k`` past the class count gives every
class). It applies to a classifier's ``[N, classes]`` outputs, logits or probabilities."""

from __future__ import annotations

import numpy as np

from models.repository.config import ModelConfig
from service.errors import BadRequest
from service.protocols.v2.codec import InferRequest, OutputTensor

CLASSIFIABLE = ("logits", "probabilities")


def classification_counts(infer: InferRequest, config: ModelConfig) -> dict[str, int]:
    """Output name -> k for the outputs asked for with ``classification``; checked before any
    compute is spent."""
    counts = {o.name: o.classification for o in infer.outputs or () if o.classification}
    for name in counts:
        if config.task != "classification" or name not in CLASSIFIABLE:
            raise BadRequest(
                f"output '{name}': classification applies to a classifier's [N, classes] "
                f"outputs ({', '.join(CLASSIFIABLE)}); this is a {config.task} model"
            )
    return counts


def classify(output: OutputTensor, count: int, labels: list[str]) -> OutputTensor:
    scores = output.data
    top = np.argsort(-scores, axis=1, kind="stable")[:, : min(count, scores.shape[1])]
    rows = [
        [f"{scores[item, index]:f}:{index}:{labels[index]}".encode() for index in indices]
        for item, indices in enumerate(top)
    ]
    return OutputTensor(output.name, "BYTES", np.array(rows, dtype=np.object_).reshape(top.shape))
