from typing import Tuple

import pytest
import torch
from torch import Tensor

from models.attention.channel_attention import ChannelSelfAttention
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)


def seed_formula(gamma: Tensor, x: Tensor) -> Tuple[Tensor, Tensor]:
    """Seed 003 CAM_Module, literally: softmax(rowmax(X X^T) - X X^T) X; gamma * out + x.

    Returns the output and the (B, C, C) attention (rows = query channels).
    """
    b, c, h, w = x.shape
    proj_query = x.view(b, c, -1)
    proj_key = x.view(b, c, -1).permute(0, 2, 1)
    energy = torch.bmm(proj_query, proj_key)  # B, C, C
    energy_new = torch.max(energy, -1, keepdim=True)[0].expand_as(energy) - energy
    attention = torch.softmax(energy_new, dim=-1)
    out = torch.bmm(attention, x.view(b, c, -1)).view(b, c, h, w)
    return gamma * out + x, attention


def test_matches_seed_formula_and_map() -> None:
    module = randomise_(ChannelSelfAttention(12))
    x = torch.randn(8, 12, 5, 7)
    expected, attention = seed_formula(module.gamma, x)
    out, maps = module.forward_with_maps(x)
    assert_close(module(x), expected)
    assert_close(out, expected)
    assert maps["channel"].shape == (8, 12)
    assert_is_distribution(maps["channel"])
    assert_close(maps["channel"], attention.mean(dim=1))


@pytest.mark.parametrize("magnitude", [10.0, 100.0, 1e4])
def test_large_inputs_as_accurate_as_the_seed_max_trick(magnitude: float) -> None:
    """The seed subtracts the row max for stability; SDPA and softmax stabilise internally.

    With energies of 1e3 to 1e10, float32 rounding of X X^T moves the result of the literal seed
    formula too, so both are measured against the seed formula in float64: ours must be finite
    and no less accurate than the seed's own float32 arithmetic.
    """
    module = randomise_(ChannelSelfAttention(12))
    x = torch.randn(8, 12, 5, 7, generator=torch.Generator().manual_seed(0)) * magnitude
    reference, attention = seed_formula(module.gamma.double(), x.double())
    seed_float32, _ = seed_formula(module.gamma, x)
    out, maps = module.forward_with_maps(x)
    fast = module(x)
    assert bool(torch.isfinite(fast).all()) and bool(torch.isfinite(out).all())
    seed_error = (seed_float32.double() - reference).abs().max().item()
    for ours in (fast, out):
        assert (ours.double() - reference).abs().max().item() <= 2 * seed_error + 1e-5
    assert_is_distribution(maps["channel"])
    assert_close(maps["channel"].double(), attention.mean(dim=1), atol=1e-4, rtol=1e-3)


def test_negated_query_identity_holds_in_double_precision() -> None:
    """softmax(rowmax(E) - E) == softmax(-E): the reason the fast path can be SDPA."""
    module = randomise_(ChannelSelfAttention(6)).double()
    x = torch.randn(3, 6, 4, 5, dtype=torch.float64) * 3
    expected, _ = seed_formula(module.gamma, x)
    torch.testing.assert_close(module(x), expected, atol=1e-10, rtol=1e-10)


def test_identity_at_init() -> None:
    x = torch.randn(2, 8, 3, 5)
    assert torch.equal(ChannelSelfAttention(8)(x), x)  # gamma starts at 0


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="channels"):
        ChannelSelfAttention(0)
    with pytest.raises(ValueError, match="expects"):
        ChannelSelfAttention(8)(torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="expects"):
        ChannelSelfAttention(8).forward_with_maps(torch.randn(2, 8, 9))
