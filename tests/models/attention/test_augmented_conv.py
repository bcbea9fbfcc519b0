from typing import Any, Optional, Union

import pytest
import torch
import torch.nn.functional as F

from models.attention.augmented_conv import AugmentedConv2d
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)

Shape = Optional[Union[int, tuple[int, int]]]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def seed_formula(module: AugmentedConv2d, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """AugmentedConv of seed 002, written plainly (heads merged as the paper does, see the module
    docstring). Returns the output and the mass each key receives, averaged over heads/queries."""
    stride, padding = module.conv_out.stride, module.conv_out.padding
    conv = F.conv2d(x, module.conv_out.weight, module.conv_out.bias, stride, padding)
    qkv = F.conv2d(x, module.qkv_conv.weight, module.qkv_conv.bias, stride, padding)
    batch, _, height, width = qkv.shape
    dk, dv, heads = module.key_channels, module.value_channels, module.num_heads
    dkh, dvh = dk // heads, dv // heads
    query, key, value = qkv[:, :dk], qkv[:, dk : 2 * dk], qkv[:, 2 * dk :]
    positions = [(row, col) for row in range(height) for col in range(width)]
    tokens = len(positions)
    attended = torch.zeros(batch, dv, height, width)
    received = torch.zeros(batch, tokens)
    for h in range(heads):
        q = query[:, h * dkh : (h + 1) * dkh] * dkh**-0.5  # (B, dkh, H, W), scaled first
        k = key[:, h * dkh : (h + 1) * dkh]
        v = value[:, h * dvh : (h + 1) * dvh].flatten(2).transpose(1, 2)  # (B, N, dvh)
        logits = torch.zeros(batch, tokens, tokens)
        for a, (qx, qy) in enumerate(positions):
            for b, (kx, ky) in enumerate(positions):
                q_vec = q[:, :, qx, qy]  # (B, dkh)
                logit = (q_vec * k[:, :, kx, ky]).sum(dim=1)
                if module.key_rel_w is not None and module.key_rel_h is not None:
                    logit = logit + q_vec @ module.key_rel_w[(ky - qy) + width - 1]
                    logit = logit + q_vec @ module.key_rel_h[(kx - qx) + height - 1]
                logits[:, a, b] = logit
        weights = logits.softmax(dim=-1)  # over keys
        received += weights.sum(dim=1) / (heads * tokens)
        for a, (qx, qy) in enumerate(positions):
            attended[:, h * dvh : (h + 1) * dvh, qx, qy] = (weights[:, a, :, None] * v).sum(dim=1)
    attn = F.conv2d(attended, module.attn_out.weight, module.attn_out.bias)
    return torch.cat([conv, attn], dim=1), received.reshape(batch, height, width)


CASES = [
    # (shape, input size, stride, relative, kernel_size)
    (4, (4, 4), 1, True, 3),
    ((3, 5), (3, 5), 1, True, 3),
    ((3, 4), (6, 8), 2, True, 3),
    (3, (5, 5), 2, True, 1),
    (None, (3, 5), 1, False, 3),
    ((3, 4), (6, 8), 2, False, 3),
]


@pytest.mark.parametrize(("shape", "size", "stride", "relative", "kernel_size"), CASES)
def test_matches_seed_formula_and_map(
    shape: Shape, size: tuple[int, int], stride: int, relative: bool, kernel_size: int
) -> None:
    module = AugmentedConv2d(
        3,
        10,
        kernel_size,
        key_dim=4,
        value_dim=2,
        num_heads=2,
        relative=relative,
        stride=stride,
        shape=shape,
    )
    module = randomise_(module)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        out, maps = module.forward_with_maps(x)
        fast = module(x)
        expected_out, expected_map = seed_formula(module, x)
    out_size = expected_map.shape[1:]
    assert out.shape == (2, 10, *out_size)
    assert_close(out, expected_out)
    assert_close(fast, expected_out)
    assert maps["attention"].shape == (2, *out_size)
    assert_close(maps["attention"], expected_map)
    assert_is_distribution(maps["attention"])


def test_relative_tables_sized_per_axis_and_scaled() -> None:
    module = AugmentedConv2d(3, 20, 3, key_dim=10, value_dim=1, num_heads=4, shape=(5, 9))
    assert module.key_rel_h is not None and module.key_rel_w is not None
    assert module.key_rel_h.shape == (9, 10)
    assert module.key_rel_w.shape == (17, 10)
    # randn * dkh ** -0.5: std about 0.32, far from plain randn's 1.
    assert 0.2 < float(module.key_rel_w.detach().std()) < 0.45


@pytest.mark.parametrize("relative", [True, False])
def test_wrong_input_size_raises(relative: bool) -> None:
    module = AugmentedConv2d(
        3, 10, 3, key_dim=4, value_dim=2, num_heads=2, relative=relative, shape=(3, 4)
    )
    x = torch.randn(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"4x4.*3x4"):
        module(x)
    with pytest.raises(ValueError, match=r"4x4.*3x4"):
        module.forward_with_maps(x)
    with pytest.raises(Exception, match=r"4x4.*3x4"):
        torch.jit.script(module)(x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_heads": 0}, "num_heads"),
        ({"key_dim": 0}, "key_dim"),
        ({"value_dim": 0}, "value_dim"),
        ({"out_channels": 4}, "out_channels"),
        ({"stride": 3}, "stride"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"shape": None}, "shape"),
        ({"shape": (0, 3)}, "shape"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "channels": 3,
        "out_channels": 10,
        "kernel_size": 3,
        "key_dim": 4,
        "value_dim": 2,
        "num_heads": 2,
        "relative": True,
        "shape": 4,
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        AugmentedConv2d(**arguments)


def test_depths_are_keyword_only() -> None:
    """The seed's positional (dk, dv, Nh) are totals; the per-head key_dim / value_dim are not,
    so a positional call in the seed's order must fail rather than build another module."""
    with pytest.raises(TypeError):
        AugmentedConv2d(3, 10, 3, 8, 4, 2)  # type: ignore[misc]
