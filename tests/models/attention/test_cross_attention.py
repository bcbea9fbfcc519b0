import math

import pytest
import torch

from models.attention.base import name_attention_maps
from models.attention.cross_attention import Conv2dCrossAttention
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)


def seed_formula(module: Conv2dCrossAttention, image: torch.Tensor, query_space: torch.Tensor):
    """Seed 000: scores = bmm(key, query) / sqrt(D_emb), (B, Nk, Nq), softmax over dim=-2
    (the keys); outputs = bmm(value, weights) reshaped to (B, D_output, Hq, Wq)."""
    bs, _, bh, bw = query_space.shape
    _, _, ih, iw = image.shape
    query = module.query(query_space).reshape(bs, -1, bh * bw)
    key = module.key(image).reshape(bs, -1, ih * iw).permute(0, 2, 1)
    value = module.value(image).reshape(bs, -1, ih * iw)
    scores = torch.bmm(key, query) / math.sqrt(module.key_dim)
    weights = torch.softmax(scores, dim=-2)
    return torch.bmm(value, weights).reshape(bs, -1, bh, bw), weights


def test_cross_attention_matches_seed_with_different_sizes_and_channels() -> None:
    module = randomise_(Conv2dCrossAttention(6, context_channels=10, key_dim=5, out_channels=7))
    x = torch.randn(3, 6, 4, 5)  # query space
    context = torch.randn(3, 10, 7, 3)  # key/value space, other size and channels
    out, maps = module.forward_with_maps(x, context)
    expected, weights = seed_formula(module, context, x)
    assert out.shape == (3, 7, 4, 5)
    assert_close(out, expected)
    assert_close(module(x, context), expected)
    assert maps["attention"].shape == (3, 7, 3)
    assert_is_distribution(maps["attention"])
    assert_close(maps["attention"], weights.mean(dim=2).reshape(3, 7, 3))


def test_self_attention_when_context_is_none() -> None:
    module = randomise_(Conv2dCrossAttention(8, key_dim=4))
    x = torch.randn(2, 8, 3, 6)
    expected, _ = seed_formula(module, x, x)
    assert_close(module(x), expected)
    out, maps = module.forward_with_maps(x)
    assert_close(out, expected)
    assert maps["attention"].shape == (2, 3, 6)


def test_defaults_and_map_prefix() -> None:
    module = Conv2dCrossAttention(5)
    assert (module.context_channels, module.key_dim, module.out_channels) == (5, 5, 5)
    parent = torch.nn.Sequential(module)
    assert name_attention_maps(parent) == ["0.attention"]
    _, maps = module.forward_with_maps(torch.randn(1, 5, 2, 2))
    assert list(maps) == ["0.attention"]


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="key_dim"):
        Conv2dCrossAttention(4, key_dim=0)
    module = Conv2dCrossAttention(4, context_channels=6)
    with pytest.raises(ValueError, match="context_channels == channels"):
        module(torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="context map"):
        module(torch.randn(1, 4, 3, 3), torch.randn(1, 4, 3, 3))
    with pytest.raises(ValueError, match="batch size"):
        module(torch.randn(2, 4, 3, 3), torch.randn(1, 6, 3, 3))
    with pytest.raises(ValueError, match="query map"):
        module(torch.randn(1, 5, 3, 3), torch.randn(1, 6, 3, 3))
