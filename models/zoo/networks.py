"""Segmenter: a :class:`Chain` (backbone, neck, head) whose logits are upsampled to the
input's size. A classifier needs nothing more than a plain ``Chain`` ending in its head."""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from models.zoo.chain import Chain


def resize_like(logits: Tensor, image: Tensor) -> Tensor:
    """Bilinear upsampling of (B, classes, h, w) logits to the image's (H, W)."""
    return F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=False)


class Segmenter(Chain):
    def forward(self, x: Tensor) -> Tensor:
        logits = x
        for part in self:
            logits = part(logits)
        return resize_like(logits, x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        logits = x
        maps: Dict[str, Tensor] = {}
        for part in self:
            logits, part_maps = part.forward_with_maps(logits)
            maps.update(part_maps)
        return resize_like(logits, x), maps
