"""Cross-attention between two 2-D feature maps with 1x1-convolution projections.

Paper: the scaled dot-product attention of Vaswani et al., "Attention Is All You Need",
NeurIPS 2017, applied between images. Seed: 000 ``Conv2dCrossAttention`` (a toy module that
replaces the Linear projections by 1x1 convolutions so feature maps need no permuting).

Math (as the seed): ``q = Wq * x`` (query space, ``D_emb`` channels), ``k = Wk * context``,
``v = Wv * context`` (``D_output`` channels), all 1x1 convolutions with bias and Xavier-uniform
weights; weights ``softmax_keys(k . q / sqrt(D_emb))``; output ``(B, D_output, Hq, Wq)``, the
weighted sum of values for every query position. No residual and no output projection.

Differences from the seed:

* argument order: the seed's ``forward(image, query_space)`` takes the key/value map first;
  here ``forward(x, context=None)`` takes the query map first, and ``context=None`` means
  self-attention (``context = x``), so the module also fits blocks that call ``forward(x)``.
* constructor: ``Conv2dCrossAttention(channels, context_channels=None, key_dim=None,
  out_channels=None)`` with ``channels = D_query_space``, ``context_channels = D_vk_space``,
  ``key_dim = D_emb`` (the query/key width of the one head, named as in every module here)
  and ``out_channels = D_output``; the last three default to ``channels``.
* the seed computes ``bmm(key, query)`` of shape ``(B, Nk, Nq)`` and softmaxes ``dim=-2``
  (the key axis); the fast path computes the same weights transposed, ``(B, 1, Nq, Nk)``
  with a softmax over the last (key) axis, through the fused kernel.

Maps: ``attention`` (B, Hk, Wk), the attention mass each key (context) position receives,
averaged over the query positions; it sums to 1.
"""

import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from models.attention.base import AttentionModule, positive
from models.attention.functional import explicit_attention, fast_attention, received_attention


class Conv2dCrossAttention(AttentionModule):
    def __init__(
        self,
        channels: int,
        context_channels: Optional[int] = None,
        key_dim: Optional[int] = None,
        out_channels: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.channels = positive("channels", channels)
        self.context_channels = positive(
            "context_channels", channels if context_channels is None else context_channels
        )
        self.key_dim = positive("key_dim", channels if key_dim is None else key_dim)
        self.out_channels = positive(
            "out_channels", channels if out_channels is None else out_channels
        )
        self.query = nn.Conv2d(self.channels, self.key_dim, 1)
        self.key = nn.Conv2d(self.context_channels, self.key_dim, 1)
        self.value = nn.Conv2d(self.context_channels, self.out_channels, 1)
        self.scale = 1.0 / math.sqrt(self.key_dim)
        # The seed's "special init": no activation follows, so Xavier rather than Kaiming.
        for conv in (self.query, self.key, self.value):
            nn.init.xavier_uniform_(conv.weight)
        self.map_names = ["attention"]

    def _project(
        self, x: Tensor, context: Optional[Tensor]
    ) -> Tuple[Tensor, Tensor, Tensor, List[int]]:
        """q (B, 1, Nq, D_emb), k (B, 1, Nk, D_emb), v (B, 1, Nk, D_out) and the output shape."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"Conv2dCrossAttention expects a query map (B, {self.channels}, H, W), "
                f"got shape {list(x.shape)}"
            )
        if context is None and self.context_channels != self.channels:
            raise ValueError(
                "self-attention (context=None) needs context_channels == channels; "
                "pass the key/value map as context"
            )
        kv = x if context is None else context
        if kv.dim() != 4 or kv.shape[1] != self.context_channels or kv.shape[0] != x.shape[0]:
            raise ValueError(
                f"Conv2dCrossAttention expects a context map (B, {self.context_channels}, H, W) "
                f"with the query's batch size {x.shape[0]}, got shape {list(kv.shape)}"
            )
        batch, _, height, width = x.shape
        query = self.query(x).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, Nq, D_emb)
        key = self.key(kv).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, Nk, D_emb)
        value = self.value(kv).flatten(2).transpose(1, 2).unsqueeze(1)  # (B, 1, Nk, D_out)
        return query, key, value, [batch, self.out_channels, height, width]

    def forward(self, x: Tensor, context: Optional[Tensor] = None) -> Tensor:
        query, key, value, shape = self._project(x, context)
        out = fast_attention(query, key, value, scale=self.scale)  # (B, 1, Nq, D_out)
        return out.squeeze(1).transpose(1, 2).reshape(shape)  # (B, D_out, Hq, Wq)

    @torch.jit.export
    def forward_with_maps(
        self, x: Tensor, context: Optional[Tensor] = None
    ) -> Tuple[Tensor, Dict[str, Tensor]]:
        query, key, value, shape = self._project(x, context)
        out, weights = explicit_attention(query, key, value, scale=self.scale)  # (B,1,Nq,Nk)
        kv = x if context is None else context
        received = received_attention(weights).reshape(
            kv.shape[0], kv.shape[2], kv.shape[3]
        )  # (B, Hk, Wk)
        out = out.squeeze(1).transpose(1, 2).reshape(shape)  # (B, D_out, Hq, Wq)
        return out, {self.map_key("attention"): received}
