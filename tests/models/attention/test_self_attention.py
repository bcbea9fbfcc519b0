from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from models.attention.self_attention import SelfAttention2d
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)


def seed_formula(module: SelfAttention2d, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Seed 003 Self_Attn / PAM_Module: out = V softmax(Q^T K)^T (unscaled); gamma * out + x.

    Returns the output and the (B, N, N) attention, rows = queries, columns = keys.
    """
    b, c, h, w = x.shape
    q = F.conv2d(x, module.query_conv.weight, module.query_conv.bias)
    k = F.conv2d(x, module.key_conv.weight, module.key_conv.bias)
    v = F.conv2d(x, module.value_conv.weight, module.value_conv.bias)
    proj_query = q.view(b, -1, h * w).permute(0, 2, 1)  # B, N, C'
    proj_key = k.view(b, -1, h * w)  # B, C', N
    energy = torch.bmm(proj_query, proj_key)  # B, N, N
    attention = torch.softmax(energy, dim=-1)
    proj_value = v.view(b, -1, h * w)  # B, C, N
    out = torch.bmm(proj_value, attention.permute(0, 2, 1)).view(b, c, h, w)
    return module.gamma * out + x, attention


@pytest.mark.parametrize("size", [(5, 7), (6, 6), (1, 9)])
def test_matches_seed_formula_and_map(size: Tuple[int, int]) -> None:
    module = randomise_(SelfAttention2d(16, reduction=4))
    x = torch.randn(8, 16, *size)
    expected, attention = seed_formula(module, x)
    out, maps = module.forward_with_maps(x)
    assert_close(out, expected)
    assert_close(module(x), expected)
    received = maps["attention"]
    assert received.shape == (8, *size)
    assert_is_distribution(received)
    assert_close(received, attention.mean(dim=1).view(8, *size))


def test_identity_at_init_and_small_channel_count() -> None:
    module = SelfAttention2d(4)  # 4 // 8 would be 0: clamped to 1
    assert module.query_conv.out_channels == 1
    x = torch.randn(2, 4, 3, 5)
    assert torch.equal(module(x), x)  # gamma starts at 0
    assert SelfAttention2d(16, rd_channels=5).key_conv.out_channels == 5


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="reduction"):
        SelfAttention2d(16, reduction=0)
    with pytest.raises(ValueError, match="rd_channels"):
        SelfAttention2d(16, rd_channels=0)
    with pytest.raises(ValueError, match="channels"):
        SelfAttention2d(0)
