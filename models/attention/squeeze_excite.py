"""Squeeze-and-Excitation channel gate.

Paper: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018 (arXiv:1709.01507).
Seed: 003 and 004 ``SELayer``: global average pool, ``Linear(C, C // r) -> ReLU ->
Linear(C // r, C) -> Sigmoid``, no biases, output ``x * gate``.

Differences from the seed: none in the math. The bottleneck width is clamped to at least 1
so small channel counts (C < reduction) still build; ``rd_channels`` sets it explicitly, and
``act_layer`` / ``gate_layer`` (seed: ReLU / Sigmoid) can be swapped, as in timm's SEModule.

Maps: ``channel`` (B, C), the sigmoid gate applied to each channel (values in (0, 1)).
"""

from typing import Dict, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, check_layer, reduced_channels


class SqueezeExcitation(AttentionModule):
    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        rd_channels: Optional[int] = None,
        act_layer: Type[nn.Module] = nn.ReLU,
        gate_layer: Type[nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        hidden = reduced_channels(channels, reduction, rd_channels)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden, bias=False),
            check_layer("act_layer", act_layer)(),
            nn.Linear(hidden, channels, bias=False),
            check_layer("gate_layer", gate_layer)(),
        )
        self.map_names = ["channel"]

    def gate(self, x: Tensor) -> Tensor:
        """The per-channel gate (B, C)."""
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(x)[:, :, None, None]

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        gate = self.gate(x)  # (B, C)
        return x * gate[:, :, None, None], {self.map_key("channel"): gate}
