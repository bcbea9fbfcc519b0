"""Global attention stages that run on the backbone's final feature map, shape-preserving.

Drop-in attention modules (SAGAN self-attention, Non-local, criss-cross) are necks as they
are (``create_attention``); the DETR encoder needs the map flattened into tokens with a sine
positional embedding, which :class:`TransformerNeck` does.
"""

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.positional_encoding import PositionEmbeddingSine
from models.attention.transformer_stack import TransformerEncoder


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C)."""
    return x.flatten(2).transpose(1, 2)


def maps_to_grid(maps: Dict[str, Tensor], height: int, width: int) -> Dict[str, Tensor]:
    """Per-token maps (B, H*W) back to the feature grid (B, H, W)."""
    grid: Dict[str, Tensor] = {}
    for name, value in maps.items():
        grid[name] = value.reshape(value.shape[0], height, width)
    return grid


class TransformerNeck(nn.Module):
    """DETR encoder over the feature map's positions; positions added to queries and keys."""

    def __init__(
        self,
        channels: int,
        num_layers: int = 2,
        num_heads: int = 4,
        dim_feedforward: Optional[int] = None,
        dropout: float = 0.1,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        self.position = PositionEmbeddingSine(channels // 2)
        self.encoder = TransformerEncoder(
            channels,
            num_layers,
            num_heads,
            dim_feedforward or 4 * channels,
            dropout,
            nn.ReLU,
            normalize_before,
        )

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        out = self.encoder(to_tokens(x), to_tokens(self.position(x)))  # (B, N, C)
        return out.transpose(1, 2).reshape(batch, channels, height, width)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        batch, channels, height, width = x.shape
        out, maps = self.encoder.forward_with_maps(to_tokens(x), to_tokens(self.position(x)))
        grid = out.transpose(1, 2).reshape(batch, channels, height, width)
        return grid, maps_to_grid(maps, height, width)
