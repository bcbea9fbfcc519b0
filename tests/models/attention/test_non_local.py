from typing import Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.attention.non_local import NonLocalBlock
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)

# dimension -> (input shape with batch 8 and 8 channels, key shape after sub-sampling)
CASES = {
    1: ((8, 8, 9), (4,)),  # odd length: max-pool floors 9 -> 4
    2: ((8, 8, 5, 7), (2, 3)),  # non-square, odd sizes
    3: ((8, 8, 3, 4, 5), (3, 2, 2)),  # time is not pooled
}
SEED_POOL_KERNELS = {1: (2,), 2: (2, 2), 3: (1, 2, 2)}
SEED_POOLS = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
SEED_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def seed_formula(module: NonLocalBlock, x: Tensor, sub_sample: bool) -> Tuple[Tensor, Tensor]:
    """Seed 003 _NonLocalBlockND: z = W(softmax(theta^T phi) g) + x, unscaled, BN in eval mode.

    Returns z and the (B, N, M) attention f_div_C (rows = queries, columns = keys).
    """
    dim = x.dim() - 2
    conv, pool = SEED_CONVS[dim], SEED_POOLS[dim]
    b, ci = x.shape[0], module.rd_channels
    g_x = conv(x, module.g.weight, module.g.bias)
    phi_x = conv(x, module.phi.weight, module.phi.bias)
    if sub_sample:
        g_x = pool(g_x, SEED_POOL_KERNELS[dim])
        phi_x = pool(phi_x, SEED_POOL_KERNELS[dim])
    g_x = g_x.view(b, ci, -1).permute(0, 2, 1)
    theta_x = conv(x, module.theta.weight, module.theta.bias).view(b, ci, -1).permute(0, 2, 1)
    f = torch.matmul(theta_x, phi_x.view(b, ci, -1))
    f_div_c = F.softmax(f, dim=-1)
    y = torch.matmul(f_div_c, g_x).permute(0, 2, 1).contiguous().view(b, ci, *x.shape[2:])
    if isinstance(module.W, nn.Sequential):
        w_conv, bn = module.W[0], module.W[1]
        w_y = conv(y, w_conv.weight, w_conv.bias)
        shape = (1, -1) + (1,) * dim
        normalised = (w_y - bn.running_mean.view(shape)) / torch.sqrt(
            bn.running_var.view(shape) + bn.eps
        )
        w_y = normalised * bn.weight.view(shape) + bn.bias.view(shape)
    else:
        w_y = conv(y, module.W.weight, module.W.bias)
    return w_y + x, f_div_c


@pytest.mark.parametrize("dimension", [1, 2, 3])
@pytest.mark.parametrize("sub_sample", [True, False])
@pytest.mark.parametrize("bn_layer", [True, False])
def test_matches_seed_formula_and_map(dimension: int, sub_sample: bool, bn_layer: bool) -> None:
    shape, key_shape = CASES[dimension]
    if not sub_sample:
        key_shape = shape[2:]
    module = randomise_(
        NonLocalBlock(8, dimension=dimension, sub_sample=sub_sample, bn_layer=bn_layer)
    )
    x = torch.randn(shape)
    expected, attention = seed_formula(module, x, sub_sample)
    out, maps = module.forward_with_maps(x)
    assert_close(out, expected)
    assert_close(module(x), expected)
    received = maps["attention"]
    assert received.shape == (8, *key_shape)
    assert_is_distribution(received)
    assert_close(received, attention.mean(dim=1).view(8, *key_shape))


@pytest.mark.parametrize("bn_layer", [True, False])
@pytest.mark.parametrize("dimension", [1, 2, 3])
def test_fresh_block_is_identity(dimension: int, bn_layer: bool) -> None:
    module = NonLocalBlock(8, dimension=dimension, bn_layer=bn_layer)
    x = torch.randn(CASES[dimension][0])
    assert torch.equal(module.train()(x), x)
    assert torch.equal(module.eval()(x), x)


def test_inner_width_default_reduction_and_clamp() -> None:
    """The seed's inter_channels: C // 2 by default, at least 1, or given explicitly."""
    assert NonLocalBlock(16).rd_channels == 8
    assert NonLocalBlock(1).rd_channels == 1
    assert NonLocalBlock(16, reduction=4).rd_channels == 4
    assert NonLocalBlock(16, rd_channels=5).theta.out_channels == 5
    assert NonLocalBlock(16, reduction=4, rd_channels=5).rd_channels == 5


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="dimension"):
        NonLocalBlock(8, dimension=4)
    with pytest.raises(ValueError, match="rd_channels"):
        NonLocalBlock(8, rd_channels=0)
    with pytest.raises(ValueError, match="reduction"):
        NonLocalBlock(8, reduction=0)
    with pytest.raises(ValueError, match="channels"):
        NonLocalBlock(0)
    with pytest.raises(ValueError, match="expects"):
        NonLocalBlock(8, dimension=2)(torch.randn(2, 8, 5))
    with pytest.raises(ValueError, match="expects"):
        NonLocalBlock(8, dimension=2)(torch.randn(2, 4, 5, 5))
    with pytest.raises(ValueError, match="at least that large"):
        NonLocalBlock(8, dimension=2)(torch.randn(2, 8, 1, 5))
    # Without sub-sampling a size of 1 is fine, and time is never pooled in 3-D.
    assert NonLocalBlock(8, sub_sample=False)(torch.randn(2, 8, 1, 5)).shape == (2, 8, 1, 5)
    assert NonLocalBlock(8, dimension=3)(torch.randn(2, 8, 1, 2, 2)).shape == (2, 8, 1, 2, 2)
