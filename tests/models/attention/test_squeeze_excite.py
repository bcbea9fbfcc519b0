import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.attention.squeeze_excite import SqueezeExcitation
from tests.models.checks import (
    assert_close,
    randomise_,
)


def seed_formula(
    module: SqueezeExcitation, x: torch.Tensor, act=torch.relu, gate=torch.sigmoid
) -> torch.Tensor:
    """SELayer of seeds 003/004: y = sigmoid(W2 relu(W1 avgpool(x))); x * y (``act`` and
    ``gate`` replace relu and sigmoid)."""
    w1, w2 = module.fc[0].weight, module.fc[2].weight
    pooled = x.mean(dim=(2, 3))
    gate = gate(act(pooled @ w1.t()) @ w2.t())
    return x * gate.view(x.shape[0], x.shape[1], 1, 1)


def test_matches_seed_formula_and_exposes_gate() -> None:
    module = randomise_(SqueezeExcitation(32, reduction=4))
    x = torch.randn(8, 32, 5, 7)
    out, maps = module.forward_with_maps(x)
    assert_close(out, seed_formula(module, x))
    assert maps["channel"].shape == (8, 32)
    assert_close(out, x * maps["channel"][:, :, None, None])


def test_small_channel_count_builds() -> None:
    module = SqueezeExcitation(4, reduction=16)
    assert module(torch.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)


def test_rd_channels_act_and_gate_layers() -> None:
    module = randomise_(
        SqueezeExcitation(16, rd_channels=5, act_layer=nn.GELU, gate_layer=nn.Hardsigmoid)
    )
    assert module.fc[0].out_features == 5
    x = torch.randn(4, 16, 3, 5)
    assert_close(module(x), seed_formula(module, x, F.gelu, F.hardsigmoid))
    with pytest.raises(ValueError, match="act_layer"):
        SqueezeExcitation(16, act_layer=nn.ReLU())  # an instance, not a class
    with pytest.raises(ValueError, match="rd_channels"):
        SqueezeExcitation(16, rd_channels=0)
