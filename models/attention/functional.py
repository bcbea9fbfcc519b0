"""Attention arithmetic shared by the modules: the fast path, the explicit path, the maps.

All functions take multi-head tensors ``(B, heads, N, d)`` and are TorchScript-compatible.
The explicit path exists only to hand back maps; tests check it equals the fast path.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def fast_attention(
    query: Tensor, key: Tensor, value: Tensor, scale: float, bias: Optional[Tensor] = None
) -> Tensor:
    """softmax(scale * Q K^T + bias) V over the key axis, via the fused kernel.

    query (B, h, Nq, d), key (B, h, Nk, d), value (B, h, Nk, dv) -> (B, h, Nq, dv).
    """
    return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scale)


def explicit_attention(
    query: Tensor, key: Tensor, value: Tensor, scale: float, bias: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor]:
    """The same as :func:`fast_attention`, also returning the weights (B, h, Nq, Nk)."""
    logits = torch.matmul(query, key.transpose(-2, -1)) * scale  # (B, h, Nq, Nk)
    if bias is not None:
        logits = logits + bias
    weights = logits.softmax(dim=-1)
    return torch.matmul(weights, value), weights


def received_attention(weights: Tensor) -> Tensor:
    """Attention mass each key position receives, averaged over heads and queries.

    weights (B, h, Nq, Nk), rows summing to 1 -> (B, Nk), summing to 1.
    """
    return weights.mean(dim=(1, 2))
