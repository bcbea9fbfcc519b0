"""DETR's transformer stacks: ``num_layers`` independent layers from transformer.py.

Seed: 004 (DETR's ``TransformerEncoder`` / ``TransformerDecoder``); the math, the deliberate
differences from the seed and the maps are described in :mod:`models.attention.transformer`.
The stacks add no maps of their own: they merge their layers' maps, keyed by the layers'
qualified names (``layers.{i}.attention``; ``layers.{i}.self_attention`` and
``layers.{i}.cross_attention``).
"""

from typing import Dict, List, Optional, Tuple, Type

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, name_attention_maps
from models.attention.transformer import TransformerDecoderLayer, TransformerEncoderLayer


class TransformerEncoder(AttentionModule):
    """``num_layers`` independent encoder layers; a final LayerNorm only when pre-norm."""

    def __init__(
        self,
        channels: int,
        num_layers: int = 6,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        act_layer: Type[nn.Module] = nn.ReLU,
        normalize_before: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.num_layers = num_layers
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                channels, num_heads, dim_feedforward, dropout, act_layer, normalize_before
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(channels) if normalize_before else None
        name_attention_maps(self)  # layer maps become "layers.{i}.attention"

    def forward(self, src: Tensor, pos: Optional[Tensor] = None) -> Tensor:
        for layer in self.layers:
            src = layer(src, pos)
        if self.norm is not None:
            src = self.norm(src)
        return src

    @torch.jit.export
    def forward_with_maps(
        self, src: Tensor, pos: Optional[Tensor] = None
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps: Dict[str, Tensor] = {}
        for layer in self.layers:
            src, layer_maps = layer.forward_with_maps(src, pos)
            maps.update(layer_maps)
        if self.norm is not None:
            src = self.norm(src)
        return src, maps


class TransformerDecoder(AttentionModule):
    """``num_layers`` independent decoder layers and a final LayerNorm.

    Output ``(B, Q, C)``, or ``(L, B, Q, C)`` (every layer's normalised output) when
    ``return_intermediate``.
    """

    def __init__(
        self,
        channels: int,
        num_layers: int = 6,
        num_heads: int = 8,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        act_layer: Type[nn.Module] = nn.ReLU,
        normalize_before: bool = False,
        return_intermediate: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.num_layers = num_layers
        self.return_intermediate = return_intermediate
        self.layers = nn.ModuleList(
            TransformerDecoderLayer(
                channels, num_heads, dim_feedforward, dropout, act_layer, normalize_before
            )
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(channels)
        name_attention_maps(self)  # "layers.{i}.self_attention", "layers.{i}.cross_attention"

    def _finish(self, tgt: Tensor, intermediate: List[Tensor]) -> Tensor:
        if self.return_intermediate:
            return torch.stack(intermediate)  # (L, B, Q, C)
        return self.norm(tgt)  # (B, Q, C)

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tensor:
        intermediate: List[Tensor] = []
        for layer in self.layers:
            tgt = layer(tgt, memory, pos, query_pos)
            if self.return_intermediate:
                intermediate.append(self.norm(tgt))
        return self._finish(tgt, intermediate)

    @torch.jit.export
    def forward_with_maps(
        self,
        tgt: Tensor,
        memory: Tensor,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        maps: Dict[str, Tensor] = {}
        intermediate: List[Tensor] = []
        for layer in self.layers:
            tgt, layer_maps = layer.forward_with_maps(tgt, memory, pos, query_pos)
            maps.update(layer_maps)
            if self.return_intermediate:
                intermediate.append(self.norm(tgt))
        return self._finish(tgt, intermediate), maps
