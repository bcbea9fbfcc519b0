from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention.base import name_attention_maps
from models.attention.cbam import CBAM, ChannelGate, SpatialGate
from tests.models.checks import (
    assert_close,
    randomise_,
)

Function = Callable[[Tensor], Tensor]


def seed_channel_attention(
    fc1: Tensor, fc2: Tensor, x: Tensor, act: Function = F.relu, gate: Function = torch.sigmoid
) -> Tensor:
    """Seed 003 ChannelAttention: sigmoid(fc2(relu(fc1(avgpool x))) + fc2(relu(fc1(maxpool x))))
    (``act`` and ``gate`` replace relu and sigmoid)."""
    avg = F.adaptive_avg_pool2d(x, 1)
    peak = F.adaptive_max_pool2d(x, 1)
    avg_out = F.conv2d(act(F.conv2d(avg, fc1)), fc2)
    max_out = F.conv2d(act(F.conv2d(peak, fc1)), fc2)
    return gate(avg_out + max_out)  # (B, C, 1, 1)


def seed_spatial_attention(conv: Tensor, x: Tensor, gate: Function = torch.sigmoid) -> Tensor:
    """Seed 003 SpatialAttention: sigmoid(conv([mean_c x, max_c x])), padding 3 for k=7 else 1."""
    kernel_size = conv.shape[-1]
    padding = 3 if kernel_size == 7 else 1
    avg_out = torch.mean(x, dim=1, keepdim=True)
    max_out, _ = torch.max(x, dim=1, keepdim=True)
    return gate(F.conv2d(torch.cat([avg_out, max_out], dim=1), conv, padding=padding))


def test_channel_gate_matches_seed_formula() -> None:
    module = randomise_(ChannelGate(32, reduction=4))
    x = torch.randn(8, 32, 5, 7)
    gate = seed_channel_attention(module.core.fc1.weight, module.core.fc2.weight, x)
    out, maps = module.forward_with_maps(x)
    assert_close(out, gate * x)
    assert maps["channel"].shape == (8, 32)
    assert_close(maps["channel"], gate.flatten(1))


@pytest.mark.parametrize("kernel_size", [3, 7])
def test_spatial_gate_matches_seed_formula(kernel_size: int) -> None:
    module = randomise_(SpatialGate(6, kernel_size=kernel_size))
    x = torch.randn(8, 6, 5, 9)
    mask = seed_spatial_attention(module.core.conv.weight, x)
    out, maps = module.forward_with_maps(x)
    assert_close(out, mask * x)
    assert maps["spatial"].shape == (8, 5, 9)
    assert_close(maps["spatial"], mask[:, 0])


def test_cbam_matches_seed_block() -> None:
    module = randomise_(CBAM(32, reduction=4, kernel_size=7))
    x = torch.randn(8, 32, 6, 9)
    # Seed BasicBlock: out = ca(out) * out; out = sa(out) * out.
    out = seed_channel_attention(module.channel_gate.fc1.weight, module.channel_gate.fc2.weight, x)
    expected_gate = out.flatten(1)
    out = out * x
    mask = seed_spatial_attention(module.spatial_gate.conv.weight, out)
    expected = mask * out
    actual, maps = module.forward_with_maps(x)
    assert_close(actual, expected)
    assert sorted(maps) == ["channel", "spatial"]
    assert_close(maps["channel"], expected_gate)
    assert_close(maps["spatial"], mask[:, 0])


def test_act_and_gate_layers_replace_relu_and_sigmoid() -> None:
    module = randomise_(
        CBAM(16, rd_channels=3, kernel_size=3, act_layer=nn.GELU, gate_layer=nn.Hardsigmoid)
    )
    assert module.channel_gate.fc1.weight.shape == (3, 16, 1, 1)
    x = torch.randn(4, 16, 5, 6)
    fc1, fc2 = module.channel_gate.fc1.weight, module.channel_gate.fc2.weight
    gated = seed_channel_attention(fc1, fc2, x, F.gelu, F.hardsigmoid) * x
    mask = seed_spatial_attention(module.spatial_gate.conv.weight, gated, F.hardsigmoid)
    assert_close(module(x), mask * gated)
    with pytest.raises(ValueError, match="gate_layer"):
        SpatialGate(16, gate_layer="sigmoid")  # type: ignore[arg-type]


def test_map_names_match_returned_keys_once_named() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 1), CBAM(16, reduction=4), ChannelGate(16))
    names = name_attention_maps(model)
    assert names == ["1.channel", "1.spatial", "2.channel"]
    x = torch.randn(2, 3, 5, 7)
    _, cbam_maps = model[1].forward_with_maps(model[0](x))
    assert sorted(cbam_maps) == ["1.channel", "1.spatial"]
    # Alone, CBAM lists exactly its own two maps: its gate cores are not AttentionModules.
    alone = CBAM(16)
    assert name_attention_maps(alone) == ["channel", "spatial"]
    assert sorted(alone.forward_with_maps(torch.randn(1, 16, 4, 4))[1]) == ["channel", "spatial"]
    scripted_maps = torch.jit.script(model[1]).forward_with_maps(model[0](x))[1]
    assert sorted(scripted_maps) == ["1.channel", "1.spatial"]


def test_reduction_is_honoured_and_clamped() -> None:
    # The seed hard-codes in_planes // 16; reduction=4 must give a hidden width of 8.
    assert ChannelGate(32, reduction=4).core.fc1.weight.shape == (8, 32, 1, 1)
    assert CBAM(32, reduction=4).channel_gate.fc1.weight.shape == (8, 32, 1, 1)
    small = ChannelGate(4, reduction=16)
    assert small.core.fc1.weight.shape == (1, 4, 1, 1)
    assert small(torch.randn(2, 4, 3, 3)).shape == (2, 4, 3, 3)


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="kernel_size"):
        SpatialGate(8, kernel_size=5)
    with pytest.raises(ValueError, match="kernel_size"):
        CBAM(8, kernel_size=5)
    with pytest.raises(ValueError, match="reduction"):
        ChannelGate(8, reduction=0)
    with pytest.raises(ValueError, match="channels"):
        CBAM(0)
    with pytest.raises(ValueError, match="expects"):
        SpatialGate(8)(torch.randn(1, 4, 5, 5))
