"""Attention-augmented convolution: a convolution concatenated with multi-head self-attention.

Paper: Bello et al., "Attention Augmented Convolutional Networks", ICCV 2019
(arXiv:1904.09925). Seed: 002 ``AugmentedConv`` (leaderj1001/Attention-Augmented-Conv2d).
``conv_out`` is a ``k x k`` convolution to ``out_channels - dv`` channels; ``qkv_conv`` is a
``k x k`` convolution (same stride and padding) to ``2 * dk + dv`` channels, split into
``num_heads`` heads (head ``h`` owns channels ``h * d .. (h + 1) * d - 1``). Queries are scaled
by ``dkh ** -0.5`` (``dkh = dk // num_heads``) *before* everything else, so the relative logits
use the scaled query too. Logits ``q . k`` (+ relative height and width logits), softmax over
keys, weighted sum of values, heads concatenated to ``(B, dv, H', W')``, a 1x1 conv
``attn_out``, and the result is ``cat(conv_out, attn_out)`` along channels.

Relative logits. For query ``(x, y)`` and key ``(x', y')`` (``x`` the row, ``y`` the column)
the added logit is ``q . key_rel_w[(y' - y) + W - 1] + q . key_rel_h[(x' - x) + H - 1]``: row
0 of each table is the offset ``-(W - 1)`` (key left of / above the query by the largest
distance), the middle row is offset 0, the last row ``+(W - 1)``. This is the convention of
the seed's ``rel_to_abs`` (pad / reshape / slice gives ``out[i, j] = x[i, j - i + L - 1]``).
Here the tables are gathered by that index instead (``F.embedding``), which gives the same
values without the pad/reshape trick or the seed's ``repeat``.

Fast path: ``fast_attention`` with ``scale=1.0`` on the pre-scaled query and the relative
logits as an additive float bias ``(B, heads, N, N)``; that N x N bias is inherent to the
math. The maps returned are compact.

Differences from the seed:

* The depths are given per head, in the vocabulary every module here shares: ``key_dim`` is
  the seed's ``dkh = dk // Nh`` and ``value_dim`` its ``dvh = dv // Nh``, so ``dk = key_dim *
  num_heads`` and ``dv = value_dim * num_heads`` are multiples of the heads by construction
  (the seed asserts that). They are keyword-only, so a call in the seed's positional
  ``(dk, dv, Nh)`` order fails instead of meaning something else.
* Validation raises ``ValueError`` (the seed asserts) and checks more: ``num_heads``,
  ``key_dim`` and ``value_dim`` at least 1, ``out_channels > dv``, ``stride`` in (1, 2),
  ``relative`` requires ``shape``.
* ``shape`` may be an int (square) or ``(height, width)``: ``key_rel_w`` has ``2W - 1`` rows
  and ``key_rel_h`` ``2H - 1`` (the seed sizes both from one square ``shape``). An input whose
  attention map size differs from ``shape`` raises ``ValueError`` naming both sizes (the seed
  fails in a reshape, or silently works when ``relative=False``).
* The relative tables are initialised ``randn * dkh ** -0.5``, as in the paper's reference
  code (normal with stddev ``dkh ** -0.5``); the seed uses plain ``randn``.
* Heads are recombined by moving the value axis before the spatial axes, as the paper's
  ``combine_heads_2d`` does. The seed reshapes ``(B, Nh, HW, dvh)`` directly into
  ``(B, Nh, dvh, H, W)``, which scrambles positions and channels (a known bug of the seed's
  source, leaderj1001/Attention-Augmented-Conv2d issue #21); we do not reproduce it.
* Defaults: ``relative=True`` (seed ``False``), ``shape=None`` (seed ``0``); ``Nh`` is named
  ``num_heads`` and ``in_channels`` is ``channels``.

Maps: ``attention`` (B, H', W'), the attention mass each key position receives, averaged over
heads and queries (sums to 1). ``H', W'`` is the size after ``stride``.
"""

from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention.base import AttentionModule, positive
from models.attention.functional import explicit_attention, fast_attention, received_attention


def _attention_size(shape: Optional[Union[int, Tuple[int, int]]]) -> Tuple[int, int]:
    """(height, width) of the attention map from ``shape``; (0, 0) when not given."""
    if shape is None:
        return 0, 0
    if isinstance(shape, int):
        height, width = shape, shape
    else:
        height, width = shape
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive (attention map size after stride), got {shape}")
    return height, width


def _relative_index(length: int, device: torch.device) -> Tensor:
    """(L, L) table row for query i and key j: ``(j - i) + L - 1`` (row 0 = offset -(L-1))."""
    positions = torch.arange(length, device=device)
    return positions[None, :] - positions[:, None] + length - 1


class AugmentedConv2d(AttentionModule):
    def __init__(
        self,
        channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        key_dim: int,
        value_dim: int,
        num_heads: int,
        relative: bool = True,
        stride: int = 1,
        shape: Optional[Union[int, Tuple[int, int]]] = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_heads", num_heads),
            ("key_dim", key_dim),
            ("value_dim", value_dim),
            ("kernel_size", kernel_size),
        ):
            positive(name, value)
        dk, dv = key_dim * num_heads, value_dim * num_heads  # the seed's total depths dk, dv
        if out_channels <= dv:
            raise ValueError(
                f"out_channels ({out_channels}) must exceed value_dim * num_heads ({dv}): the "
                f"convolution produces the other out_channels - value_dim * num_heads channels"
            )
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if relative and shape is None:
            raise ValueError(
                "relative=True needs shape, the attention map size after stride "
                "(int or (height, width)), to size the relative position tables"
            )
        self.height, self.width = _attention_size(shape)
        self.key_channels = dk
        self.value_channels = dv
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim
        self.scale = key_dim**-0.5
        padding = (kernel_size - 1) // 2
        self.conv_out = nn.Conv2d(channels, out_channels - dv, kernel_size, stride, padding)
        self.qkv_conv = nn.Conv2d(channels, 2 * dk + dv, kernel_size, stride, padding)
        self.attn_out = nn.Conv2d(dv, dv, kernel_size=1)
        if relative:
            std = key_dim**-0.5
            self.key_rel_w = nn.Parameter(torch.randn(2 * self.width - 1, key_dim) * std)
            self.key_rel_h = nn.Parameter(torch.randn(2 * self.height - 1, key_dim) * std)
        else:  # None parameters: TorchScript drops the relative branch.
            self.register_parameter("key_rel_w", None)
            self.register_parameter("key_rel_h", None)
        self.map_names = ["attention"]

    def split_heads(self, x: Tensor) -> Tensor:
        """(B, heads * d, H, W) -> (B, heads, N, d)."""
        batch, channels, height, width = x.shape
        head_dim = channels // self.num_heads
        return x.reshape(batch, self.num_heads, head_dim, height * width).transpose(2, 3)

    def relative_logits(self, query: Tensor, height: int, width: int) -> Optional[Tensor]:
        """Relative height + width logits (B, heads, N, N) for the scaled query (B, heads, N, d)."""
        rel_w = self.key_rel_w
        rel_h = self.key_rel_h
        if rel_w is None or rel_h is None:
            return None
        batch, heads, tokens, depth = query.shape
        grid = query.reshape(batch, heads, height, width, depth)  # (B, heads, H, W, d)
        embed_w = F.embedding(_relative_index(width, query.device), rel_w)  # (W, W', d)
        embed_h = F.embedding(_relative_index(height, query.device), rel_h)  # (H, H', d)
        logits_w = torch.einsum("bnxyd,yzd->bnxyz", grid, embed_w)  # (B, heads, H, W, W')
        logits_h = torch.einsum("bnxyd,xzd->bnxyz", grid, embed_h)  # (B, heads, H, W, H')
        bias = logits_h[:, :, :, :, :, None] + logits_w[:, :, :, :, None, :]  # (B,h,H,W,H',W')
        return bias.reshape(batch, heads, tokens, tokens)

    def project(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Optional[Tensor]]:
        """conv_out (B, out - dv, H', W'), scaled q, k, v (B, heads, N, d), relative bias."""
        conv = self.conv_out(x)
        qkv = self.qkv_conv(x)  # (B, 2 dk + dv, H', W')
        height, width = qkv.shape[2], qkv.shape[3]
        if self.height > 0 and (height != self.height or width != self.width):
            raise ValueError(
                f"attention map is {height}x{width} but the module was built for shape "
                f"{self.height}x{self.width} (height x width, after stride)"
            )
        query, key, value = qkv.split(
            [self.key_channels, self.key_channels, self.value_channels], dim=1
        )
        query = self.split_heads(query) * self.scale  # (B, heads, N, key_dim)
        key = self.split_heads(key)  # (B, heads, N, key_dim)
        value = self.split_heads(value)  # (B, heads, N, value_dim)
        return conv, query, key, value, self.relative_logits(query, height, width)

    def combine(self, conv: Tensor, attended: Tensor) -> Tensor:
        """Merge heads of attended (B, heads, N, value_dim), 1x1 conv, concatenate after
        conv_out."""
        batch, height, width = conv.shape[0], conv.shape[2], conv.shape[3]
        merged = attended.transpose(2, 3).reshape(batch, self.value_channels, height, width)
        # merged: (B, heads * value_dim, H', W')
        return torch.cat([conv, self.attn_out(merged)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        conv, query, key, value, bias = self.project(x)
        return self.combine(conv, fast_attention(query, key, value, 1.0, bias))

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        conv, query, key, value, bias = self.project(x)
        attended, weights = explicit_attention(query, key, value, 1.0, bias)
        received = received_attention(weights).reshape(conv.shape[0], conv.shape[2], conv.shape[3])
        return self.combine(conv, attended), {self.map_key("attention"): received}
