"""``Chain``: the container every architecture is made of.

An ``nn.Sequential`` whose parts all implement ``forward_with_maps``; it runs them in order
and merges their maps. Because the parts are named (``stage3``, ``block1``, ``attn``), the
qualified module names become the stable attention-map names (``backbone.stage3.block1.attn.
spatial``) through :func:`models.attention.base.name_attention_maps`.
"""

from typing import Dict, Tuple

import torch
from torch import Tensor, nn


class Chain(nn.Sequential):
    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps: Dict[str, Tensor] = {}
        for part in self:
            x, part_maps = part.forward_with_maps(x)
            maps.update(part_maps)
        return x, maps


class NoMaps(nn.Module):
    """Base for parts that compute no attention: ``forward_with_maps`` returns no maps."""

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps: Dict[str, Tensor] = {}
        return self.forward(x), maps
