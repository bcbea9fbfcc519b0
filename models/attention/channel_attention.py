"""Channel self-attention: every channel attends over all channels (DANet CAM).

Paper: Fu et al., "Dual Attention Network for Scene Segmentation" (channel attention module),
CVPR 2019 (arXiv:1809.02983).
Seed: 003 ``CAM_Module``: with ``X`` the input as (B, C, N), ``energy = X X^T`` (B, C, C),
``energy_new = rowmax(energy) - energy``, ``attn = softmax(energy_new)`` over the last axis,
``out = attn X`` reshaped to (B, C, H, W), ``gamma * out + x`` with ``gamma`` a scalar
initialised to 0. There are no projections: Q, K and V are the input itself.

Why the fast path is SDPA: softmax is invariant to adding a per-row constant, so
``softmax(rowmax(E) - E) == softmax(-E)``, and ``-E = (-X) X^T``. The module is therefore
scaled-dot-product attention with the C channels as tokens of dimension H * W: query ``-X``,
key ``X``, value ``X``, scale 1. The seed subtracts the row max for numerical stability; the
softmax (and SDPA) already subtract the row max internally, so nothing is lost; the tests
check the equality with the literal seed formula, large-magnitude inputs included.

Differences from the seed: none in the math (the max-minus-energy step is folded into the
negated query as explained above). ``forward`` checks the input is (B, channels, H, W).

Maps: ``channel`` (B, C), the attention mass each channel receives, averaged over query
channels (sums to 1).
"""

from typing import Dict, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, positive
from models.attention.functional import explicit_attention, fast_attention, received_attention


class ChannelSelfAttention(AttentionModule):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = positive("channels", channels)
        self.gamma = nn.Parameter(torch.zeros(1))
        # The seed's dot product is unscaled: softmax(Q K^T), not softmax(Q K^T / sqrt(d)).
        self.scale: float = 1.0
        self.map_names = ["channel"]

    def _tokens(self, x: Tensor) -> Tensor:
        """The channels as single-head tokens (B, 1, C, H * W)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"ChannelSelfAttention expects (B, {self.channels}, H, W) input, "
                f"got {list(x.shape)}"
            )
        return x.flatten(2)[:, None]  # (B, 1, C, N)

    def _residual(self, attended: Tensor, x: Tensor) -> Tensor:
        return self.gamma * attended[:, 0].reshape(x.shape) + x  # (B, C, H, W)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self._tokens(x)
        return self._residual(fast_attention(-tokens, tokens, tokens, scale=self.scale), x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        tokens = self._tokens(x)
        attended, weights = explicit_attention(-tokens, tokens, tokens, scale=self.scale)
        # weights (B, 1, C, C) -> mass each channel receives (B, C)
        maps = {self.map_key("channel"): received_attention(weights)}
        return self._residual(attended, x), maps
