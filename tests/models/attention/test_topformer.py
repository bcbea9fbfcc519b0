import pytest
import torch
from torch import nn

from models.attention.topformer import TopFormerAttention
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)


def conv_bn(module: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Conv2d_BN in eval mode: 1x1 conv without bias, then BN with running statistics."""
    conv, bn = module.c, module.bn
    y = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return (y - bn.running_mean[:, None, None]) * scale[:, None, None] + bn.bias[:, None, None]


def seed_formula(module: TopFormerAttention, x: torch.Tensor, logit_scale: float = 1.0):
    """Seed 001: attn = softmax(qq @ kk, dim=-1) with NO 1/sqrt(key_dim) scale;
    xx = attn @ vv, heads concatenated to dh channels, then proj = act_layer -> Conv2d_BN.
    ``logit_scale`` only exists to show the seed's unused key_dim ** -0.5 would differ."""
    b, _, h, w = x.shape
    nh, kd, d = module.num_heads, module.key_dim, module.value_dim
    qq = conv_bn(module.to_q, x).reshape(b, nh, kd, h * w).permute(0, 1, 3, 2)
    kk = conv_bn(module.to_k, x).reshape(b, nh, kd, h * w)
    vv = conv_bn(module.to_v, x).reshape(b, nh, d, h * w).permute(0, 1, 3, 2)
    attn = (torch.matmul(qq, kk) * logit_scale).softmax(dim=-1)
    xx = torch.matmul(attn, vv).permute(0, 1, 3, 2).reshape(b, nh * d, h, w)
    return conv_bn(module.proj[1], module.proj[0](xx)), attn


def test_matches_seed_formula_unscaled_logits() -> None:
    module = randomise_(TopFormerAttention(12, key_dim=4, num_heads=3, attn_ratio=2))
    x = torch.randn(2, 12, 5, 3)
    expected, attn = seed_formula(module, x)
    out, maps = module.forward_with_maps(x)
    assert_close(out, expected)
    assert_close(module(x), expected)
    assert maps["attention"].shape == (2, 5, 3)
    assert_is_distribution(maps["attention"])
    assert_close(maps["attention"], attn.mean(dim=(1, 2)).reshape(2, 5, 3))
    # The seed's key_dim ** -0.5 would change the result: the test can tell the two apart.
    scaled, _ = seed_formula(module, x, logit_scale=module.key_dim**-0.5)
    assert not torch.allclose(scaled, out, atol=1e-3)


def test_hardswish_activation_and_fractional_ratio() -> None:
    module = randomise_(
        TopFormerAttention(8, key_dim=4, num_heads=2, attn_ratio=1.5, act_layer=nn.Hardswish)
    )
    assert isinstance(module.proj[0], nn.Hardswish)
    assert module.value_dim == 6 and module.dh == 12
    x = torch.randn(3, 8, 4, 4)
    assert_close(module(x), seed_formula(module, x)[0])


def test_fresh_module_outputs_zeros_for_a_residual() -> None:
    module = TopFormerAttention(8, key_dim=4, num_heads=2)
    x = torch.randn(2, 8, 3, 3)
    assert torch.count_nonzero(module(x)) == 0
    module.eval()
    out, maps = module.forward_with_maps(x)
    assert torch.count_nonzero(out) == 0
    assert_is_distribution(maps["attention"])


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        TopFormerAttention(8, num_heads=0)
    with pytest.raises(ValueError, match="attn_ratio"):
        TopFormerAttention(8, key_dim=2, attn_ratio=0.25)
    with pytest.raises(ValueError, match=r"nn\.Module class"):
        TopFormerAttention(8, act_layer=nn.ReLU())  # an instance, not a class
    with pytest.raises(ValueError, match="expects"):
        TopFormerAttention(8, key_dim=2, num_heads=2)(torch.randn(1, 4, 3, 3))
