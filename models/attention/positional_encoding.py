"""DETR's 2-D sine positional encoding for feature maps.

Paper: Carion et al., "End-to-End Object Detection with Transformers" (DETR), ECCV 2020,
generalising the 1-D sinusoids of Vaswani et al. (NeurIPS 2017) to images.
Source: not in the seed text. Seed 004's ``Transformer`` takes a ``pos_embed`` that DETR builds
with ``PositionEmbeddingSine`` (DETR's ``models/position_encoding.py``); this is that encoding.

Math: every position gets 1-based coordinates ``y = row + 1`` and ``x = col + 1`` (DETR's
cumulative sum over a not-padded mask); with ``normalize`` they become
``y / (H + eps) * scale`` and ``x / (W + eps) * scale`` (``eps = 1e-6``). For
``i < num_pos_feats`` the frequency is ``t_i = temperature ** (2 * (i // 2) / num_pos_feats)``
and the channel holds ``sin(c / t_i)`` for even ``i`` and ``cos(c / t_i)`` for odd ``i``
(DETR's ``stack(sin(even), cos(odd)).flatten``, interleaved). The output stacks the ``y``
channels first, then the ``x`` channels: ``(B, 2 * num_pos_feats, H, W)``.

Differences from DETR: no padding mask (the service feeds whole images), so the coordinates
are the plain ``1..H`` and ``1..W``; the result depends on the input's shape only, is computed
in float32 and cast to the input's dtype, and is returned as a batch-broadcast view (do not
modify it in place). ``normalize`` defaults to True (DETR's class defaults to False but its
model builder passes True). Not an :class:`AttentionModule`: it has no attention maps.
"""

import math
from typing import Optional

import torch
from torch import Tensor, nn


class PositionEmbeddingSine(nn.Module):
    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000,
        normalize: bool = True,
        scale: Optional[float] = 2 * math.pi,
    ) -> None:
        super().__init__()
        if num_pos_feats < 2 or num_pos_feats % 2 != 0:
            raise ValueError(
                f"num_pos_feats must be a positive even number (sin/cos pairs), "
                f"got {num_pos_feats}; the output has 2 * num_pos_feats channels"
            )
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.num_pos_feats = num_pos_feats
        self.temperature = float(temperature)
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else float(scale)
        self.eps = 1e-6

    def _embed(self, coords: Tensor) -> Tensor:
        """coords (L,) -> (L, num_pos_feats): interleaved sin (even) / cos (odd) channels."""
        dims = torch.arange(self.num_pos_feats, dtype=torch.float32, device=coords.device)
        freqs = self.temperature ** (2 * torch.div(dims, 2, rounding_mode="floor") / dims.numel())
        phase = coords[:, None] / freqs  # (L, F)
        return torch.stack((phase[:, 0::2].sin(), phase[:, 1::2].cos()), dim=2).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W), only its shape is used -> (B, 2 * num_pos_feats, H, W)."""
        if x.dim() != 4:
            raise ValueError(f"PositionEmbeddingSine expects (B, C, H, W), got {list(x.shape)}")
        batch, height, width = x.shape[0], x.shape[2], x.shape[3]
        y = torch.arange(1, height + 1, dtype=torch.float32, device=x.device)  # (H,)
        xs = torch.arange(1, width + 1, dtype=torch.float32, device=x.device)  # (W,)
        if self.normalize:
            y = y / (height + self.eps) * self.scale
            xs = xs / (width + self.eps) * self.scale
        pos_y = self._embed(y).t()[:, :, None].expand(-1, height, width)  # (F, H, W)
        pos_x = self._embed(xs).t()[:, None, :].expand(-1, height, width)  # (F, H, W)
        pos = torch.cat((pos_y, pos_x), dim=0).to(x.dtype)  # (2F, H, W)
        return pos.unsqueeze(0).expand(batch, -1, -1, -1)  # (B, 2F, H, W)
