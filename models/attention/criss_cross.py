"""Criss-cross attention (CCNet), in plain PyTorch.

Paper: Huang et al., "CCNet: Criss-Cross Attention for Semantic Segmentation", ICCV 2019
(arXiv:1811.11721). Seed: 004 ``CrissCrossAttention``: 1x1-conv query and key to
``C // 8`` channels, 1x1-conv value to ``C``, a zero-initialised scalar ``gamma``. Each pixel
``(i, j)`` scores, without scaling, every pixel of its column ``(k, j)`` and of its row
``(i, l)``, the pixel itself counted once (``H + W - 1`` energies); one softmax runs jointly
over those energies and the output is the same-weighted sum of the values, ``gamma * out + x``.

Why this file exists: the seed computes the energies and the aggregation with a CUDA
extension (``ca_weight`` / ``ca_map``). Here both are two einsums, one over columns and one
over rows, so the module runs on any device and compiles with TorchScript; no ``(HW x HW)``
matrix is ever built. The self position is removed from the column part (its diagonal is set
to ``-inf`` before the softmax, as CCNet's own pure-PyTorch version does), so it is counted
once, in the row part. The fused SDPA kernel cannot be used: the softmax runs jointly over a
row and a column, which is not a standard attention, so ``forward`` and ``forward_with_maps``
share the same math and ``forward`` only skips building the map.

Differences from the seed:

* ``recurrence`` (default 2, CCNet's RCCA setting): the same module, with shared weights, is
  applied that many times in sequence, so each pixel gathers context from the whole image.
  The seed's module is one pass (``recurrence=1``); RCCA loops it outside the module.
* The query/key width is ``max(channels // reduction, 1)`` so small channel counts build;
  ``reduction`` (seed: fixed 8) is a named parameter, and ``rd_channels`` sets the width
  explicitly.

Maps: ``attention`` (B, H, W), the attention mass each position receives, averaged over all
``H * W`` queries and over the ``recurrence`` passes (sums to 1). It is gathered from the
column and row weights (each summed over its query axis and put back at its key positions).
"""

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, positive, reduced_channels


class CrissCrossAttention(AttentionModule):
    def __init__(
        self,
        channels: int,
        reduction: int = 8,
        rd_channels: Optional[int] = None,
        recurrence: int = 2,
    ) -> None:
        super().__init__()
        query_channels = reduced_channels(channels, reduction, rd_channels)
        self.query = nn.Conv2d(channels, query_channels, kernel_size=1)
        self.key = nn.Conv2d(channels, query_channels, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.recurrence = positive("recurrence", recurrence)  # criss-cross passes
        self.map_names = ["attention"]

    def criss_cross(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """One pass. Returns the output (B, C, H, W), the column weights (B, H, W, H) indexed
        [query row, query column, key row] and the row weights (B, H, W, W) indexed
        [query row, query column, key column]."""
        height, width = x.shape[2], x.shape[3]
        query = self.query(x)  # (B, Cq, H, W)
        key = self.key(x)  # (B, Cq, H, W)
        value = self.value(x)  # (B, C, H, W)
        column_energy = torch.einsum("bchw,bckw->bhwk", query, key)  # (B, H, W, H)
        # The pixel itself lies in both its row and its column: keep it in the row part only.
        self_position = torch.eye(height, dtype=torch.bool, device=x.device).unsqueeze(1)
        column_energy = column_energy.masked_fill(self_position, float("-inf"))  # (B, H, W, H)
        row_energy = torch.einsum("bchw,bchl->bhwl", query, key)  # (B, H, W, W)
        weights = torch.cat([column_energy, row_energy], dim=-1).softmax(dim=-1)
        column_weights, row_weights = weights.split([height, width], dim=-1)
        out = torch.einsum("bhwk,bckw->bchw", column_weights, value) + torch.einsum(
            "bhwl,bchl->bchw", row_weights, value
        )  # (B, C, H, W)
        return self.gamma * out + x, column_weights, row_weights

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for _ in range(self.recurrence):
            out, _, _ = self.criss_cross(out)
        return out

    @torch.jit.export
    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        batch, height, width = x.shape[0], x.shape[2], x.shape[3]
        received = torch.zeros(batch, height, width, dtype=x.dtype, device=x.device)
        out = x
        for _ in range(self.recurrence):
            out, column_weights, row_weights = self.criss_cross(out)
            # Column part: key (k, j) collects from every query row i -> (B, W, H) -> (B, H, W).
            received = received + column_weights.sum(dim=1).transpose(1, 2)
            # Row part: key (i, l) collects from every query column j -> (B, H, W).
            received = received + row_weights.sum(dim=2)
        received = received / float(height * width * self.recurrence)  # (B, H, W), sums to 1
        return out, {self.map_key("attention"): received}
