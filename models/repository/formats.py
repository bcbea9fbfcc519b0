"""Serialised model formats, behind one small interface.

A format knows how to write a module to a file and how to load that file for a device, giving
back a :class:`ServableModel`: ``forward(x) -> logits`` and ``forward_with_maps(x) ->
(logits, maps)``. The service only ever talks to ``ServableModel``, so a second format (a
``torch.export`` / AOTInductor ``model.pt2``) can be added here without touching it.

TorchScript is the first format. ``torch.jit.script``/``freeze`` are marked deprecated in
torch 2.13 but still work; that is exactly why the format sits behind this interface.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

MAPS_METHOD = "forward_with_maps"


class ServableModel(Protocol):
    def __call__(self, x: Tensor) -> Tensor: ...

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]: ...


class ModelFormat(Protocol):
    name: str
    filename: str

    def save(self, model: nn.Module, example: Tensor, path: Path) -> None: ...

    def load(self, path: Path, device: torch.device, optimize: bool = True) -> ServableModel: ...


class TorchScriptFormat:
    """Scripted (traced only as a fallback, with a warning), frozen, saved as ``model.pt``.

    Freezing folds BatchNorm into convolutions and inlines parameters; it is device-neutral.
    ``optimize_for_inference`` is applied at load time, for the device the file is loaded on,
    because on CPU it may pre-pack weights into MKLDNN layouts that a GPU cannot run.
    """

    name = "torchscript"
    filename = "model.pt"

    def save(self, model: nn.Module, example: Tensor, path: Path) -> None:
        model = model.eval()
        try:
            compiled = torch.jit.script(model)
        except Exception as error:
            warnings.warn(
                f"torch.jit.script failed ({error.__class__.__name__}: {error}); "
                "falling back to tracing, which freezes control flow for this input size",
                stacklevel=2,
            )
            compiled = torch.jit.trace_module(
                model, {"forward": example, MAPS_METHOD: example}, strict=False
            )
        frozen = torch.jit.freeze(compiled.eval(), preserved_attrs=[MAPS_METHOD])
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.jit.save(frozen, str(path))

    def load(self, path: Path, device: torch.device, optimize: bool = True) -> ServableModel:
        module = torch.jit.load(str(path), map_location=device).eval()
        if optimize:
            module = torch.jit.optimize_for_inference(module, other_methods=[MAPS_METHOD])
        return module


FORMATS: dict[str, ModelFormat] = {TorchScriptFormat.name: TorchScriptFormat()}


def get_format(name: str) -> ModelFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown model format {name!r}; known: {sorted(FORMATS)}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
