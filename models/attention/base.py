"""The one convention every attention module follows, so maps can be asked for by name.

Every module in :mod:`models.attention` is an :class:`AttentionModule`:

* ``forward(x)`` is the fast path: it returns the output only and, where the math is a
  scaled dot product with a softmax over keys, runs
  ``torch.nn.functional.scaled_dot_product_attention``.
* ``forward_with_maps(x)`` (``@torch.jit.export``, so it survives TorchScript export) runs
  the explicit path and also returns a ``Dict[str, Tensor]`` of compact maps: a per-position
  map ``(B, H, W)`` of the attention mass each position receives (averaged over queries and
  heads, so it sums to 1), a ``(B, C)`` channel map for channel gates, the ``(B, H, W)`` mask
  for spatial gates, ``(B, 2, 3)`` theta for the spatial transformer. Never an N x N matrix.

Map keys are ``map_prefix + local_name``. ``map_prefix`` is empty for a module used alone, and
:func:`name_attention_maps` sets it to the module's qualified name in an architecture (for
example ``"stage3.block1.attn."``), which gives the stable names the service exposes.
"""

from typing import Dict, List, Optional, Tuple, Type

import torch
from torch import Tensor, nn


class AttentionModule(nn.Module):
    """Base class: holds the map-name prefix and the list of local map names."""

    #: Local names of the maps ``forward_with_maps`` returns (without prefix); set by subclasses.
    map_names: List[str]

    def __init__(self) -> None:
        super().__init__()
        self.map_prefix: str = ""
        self.map_names = []

    def map_key(self, local_name: str) -> str:
        """The full key of one of this module's maps."""
        return self.map_prefix + local_name


class Identity(AttentionModule):
    """No attention: lets a block take ``attn_layer=None`` and still call ``forward_with_maps``."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps: Dict[str, Tensor] = {}
        return x, maps


def name_attention_maps(model: nn.Module) -> List[str]:
    """Prefix every attention module's maps with its qualified name; return all map names.

    Call once after an architecture is built (before scripting): the prefixes become
    constants of the scripted module.
    """
    names: List[str] = []
    for qualified_name, module in model.named_modules():
        if isinstance(module, AttentionModule):
            module.map_prefix = f"{qualified_name}." if qualified_name else ""
            names.extend(module.map_key(local) for local in module.map_names)
    return names


def positive(name: str, value: int) -> int:
    """``value`` if it is at least 1; a ValueError naming the argument otherwise."""
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


def reduced_channels(channels: int, reduction: int, rd_channels: Optional[int] = None) -> int:
    """The inner width of a channel bottleneck: ``rd_channels`` when given, else
    ``max(channels // reduction, 1)`` (the seeds' ``C // r``, clamped so small counts build)."""
    positive("channels", channels)
    if rd_channels is not None:
        return positive("rd_channels", rd_channels)
    return max(channels // positive("reduction", reduction), 1)


def check_layer(name: str, layer: Type[nn.Module]) -> Type[nn.Module]:
    """``act_layer`` and ``gate_layer`` are ``nn.Module`` classes (built once per use), never
    strings or instances, so every module takes them the same way."""
    if not (isinstance(layer, type) and issubclass(layer, nn.Module)):
        raise ValueError(f"{name} must be an nn.Module class such as nn.ReLU, got {layer!r}")
    return layer
