"""Position self-attention over all H x W positions (SAGAN self-attention, DANet PAM).

Papers: Zhang et al., "Self-Attention Generative Adversarial Networks", ICML 2019
(arXiv:1805.08318); Fu et al., "Dual Attention Network for Scene Segmentation" (position
attention module), CVPR 2019 (arXiv:1809.02983).
Seed: 003 ``Self_Attn`` and ``PAM_Module`` (the same math): 1x1 convs give Q and K with
``C // 8`` channels and V with ``C`` channels (with biases); ``energy = Q^T K`` (B, N, N),
**unscaled**; softmax over the key axis; ``out = V attn^T`` (B, C, N); ``gamma * out + x`` with
``gamma`` a scalar initialised to 0, so the block starts as the identity.

Differences from the seed:

* ``forward`` returns the output only (the seed's ``Self_Attn`` also returns the N x N
  attention); the compact map comes from ``forward_with_maps``.
* ``Self_Attn``'s unused ``activation`` argument is dropped.
* The reduction 8 is the named argument ``reduction``; the Q/K width is clamped to at least 1,
  or set explicitly by ``rd_channels``.
* The seed's ``Self_Attn`` unpacks the size as ``(B, C, width, height)`` (swapped names);
  harmless there because it only flattens and restores the same shape, and any H x W works.

Maps: ``attention`` (B, H, W), the attention mass each key position receives, averaged over
query positions (sums to 1).
"""

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, reduced_channels
from models.attention.functional import explicit_attention, fast_attention, received_attention


class SelfAttention2d(AttentionModule):
    def __init__(
        self, channels: int, reduction: int = 8, rd_channels: Optional[int] = None
    ) -> None:
        super().__init__()
        key_channels = reduced_channels(channels, reduction, rd_channels)
        self.query_conv = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.key_conv = nn.Conv2d(channels, key_channels, kernel_size=1)
        self.value_conv = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        # The seed's dot product is unscaled: softmax(Q K^T), not softmax(Q K^T / sqrt(d)).
        self.scale: float = 1.0
        self.map_names = ["attention"]

    def _project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Single-head Q (B, 1, N, C'), K (B, 1, N, C') and V (B, 1, N, C)."""
        query = self.query_conv(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, N, C')
        key = self.key_conv(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, N, C')
        value = self.value_conv(x).flatten(2).transpose(1, 2)[:, None]  # (B, 1, N, C)
        return query, key, value

    def _residual(self, attended: Tensor, x: Tensor) -> Tensor:
        out = attended[:, 0].transpose(1, 2).reshape(x.shape)  # (B, 1, N, C) -> (B, C, H, W)
        return self.gamma * out + x

    def forward(self, x: Tensor) -> Tensor:
        query, key, value = self._project(x)
        return self._residual(fast_attention(query, key, value, scale=self.scale), x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        query, key, value = self._project(x)
        attended, weights = explicit_attention(query, key, value, scale=self.scale)  # (B,1,N,N)
        received = received_attention(weights).reshape(x.shape[0], x.shape[2], x.shape[3])
        return self._residual(attended, x), {self.map_key("attention"): received}
