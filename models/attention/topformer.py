"""TopFormer multi-head self-attention with Conv+BN projections.

Paper: Zhang et al., "TopFormer: Token Pyramid Transformer for Mobile Semantic Segmentation",
CVPR 2022 (arXiv:2204.05525); the value widening (``attn_ratio``) follows LeViT.
Seed: 001 ``Attention``: ``to_q``/``to_k`` are ``Conv2d_BN(C, key_dim * heads)``, ``to_v`` is
``Conv2d_BN(C, int(attn_ratio * key_dim) * heads)`` (1x1 convolution without bias, then
BatchNorm); per head ``softmax_keys(q k^T) v``; the heads are concatenated into
``dh = d * heads`` channels and projected back by ``act_layer -> Conv2d_BN(dh, C)`` whose
BatchNorm weight starts at 0.

Scaling, deliberately as the seed: the seed (like the official TopFormer code) defines
``self.scale = key_dim ** -0.5`` but never applies it, so the logits are the *unscaled*
``q k^T``. We keep that math (``scale=1.0``) so trained TopFormer weights behave the same
here; ``self.scale`` is stored as 1.0 to say so.

Zero output at init: the projection's BatchNorm weight (and bias) start at 0, so a fresh module
outputs zeros. TopFormer uses it inside a residual (``x + attn(x)``), which therefore starts as
the identity; the module itself adds no residual.

Differences from the seed: the seed's ``activation`` is named ``act_layer``, as in every module
here; it defaults to ``nn.ReLU`` (the seed's default ``None`` cannot be instantiated) and must
be an ``nn.Module`` class; the seed's ``norm_cfg`` (mmcv) is
plain ``nn.BatchNorm2d``. Submodule names (``to_q.c``, ``to_q.bn``, ``proj.1.c`` ...) follow the
official code so its state dicts load.

Maps: ``attention`` (B, H, W), the attention mass each position receives, averaged over heads
and queries; it sums to 1.
"""

from typing import Dict, Tuple, Type

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, check_layer, positive
from models.attention.functional import explicit_attention, fast_attention, received_attention


class Conv2dBN(nn.Sequential):
    """TopFormer's ``Conv2d_BN``: a bias-free 1x1 convolution ``c`` then BatchNorm ``bn``."""

    def __init__(self, in_channels: int, out_channels: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_channels, out_channels, 1, bias=False))
        bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(bn.weight, bn_weight_init)
        nn.init.constant_(bn.bias, 0.0)
        self.add_module("bn", bn)


class TopFormerAttention(AttentionModule):
    def __init__(
        self,
        channels: int,
        key_dim: int = 16,
        num_heads: int = 8,
        attn_ratio: float = 4,
        act_layer: Type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        for name, value in (("channels", channels), ("key_dim", key_dim), ("num_heads", num_heads)):
            positive(name, value)
        value_dim = int(attn_ratio * key_dim)
        if value_dim < 1:
            raise ValueError(
                f"attn_ratio * key_dim must be at least 1 (value width per head), "
                f"got {attn_ratio} * {key_dim}"
            )
        self.channels = channels
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim  # the seed's ``d``
        self.dh = value_dim * num_heads
        self.scale = 1.0  # the seed's key_dim ** -0.5 is never applied; see the module docstring
        self.to_q = Conv2dBN(channels, key_dim * num_heads)
        self.to_k = Conv2dBN(channels, key_dim * num_heads)
        self.to_v = Conv2dBN(channels, self.dh)
        self.proj = nn.Sequential(
            check_layer("act_layer", act_layer)(), Conv2dBN(self.dh, channels, bn_weight_init=0.0)
        )
        self.map_names = ["attention"]

    def _heads(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """q, k (B, heads, N, key_dim) and v (B, heads, N, d)."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"TopFormerAttention expects (B, {self.channels}, H, W), got {list(x.shape)}"
            )
        batch, n = x.shape[0], x.shape[2] * x.shape[3]
        q = self.to_q(x).reshape(batch, self.num_heads, self.key_dim, n).transpose(2, 3)
        k = self.to_k(x).reshape(batch, self.num_heads, self.key_dim, n).transpose(2, 3)
        v = self.to_v(x).reshape(batch, self.num_heads, self.value_dim, n).transpose(2, 3)
        return q, k, v

    def _project(self, heads_out: Tensor, x: Tensor) -> Tensor:
        """(B, heads, N, d) -> concatenated heads (B, dh, H, W) -> (B, C, H, W)."""
        merged = heads_out.transpose(2, 3).reshape(x.shape[0], self.dh, x.shape[2], x.shape[3])
        return self.proj(merged)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self._heads(x)
        return self._project(fast_attention(q, k, v, scale=self.scale), x)

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        q, k, v = self._heads(x)
        out, weights = explicit_attention(q, k, v, scale=self.scale)  # weights (B, h, N, N)
        received = received_attention(weights).reshape(x.shape[0], x.shape[2], x.shape[3])
        return self._project(out, x), {self.map_key("attention"): received}
