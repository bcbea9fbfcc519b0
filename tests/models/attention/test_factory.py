import pytest
import torch

from models.attention import (
    ATTENTION_MODULES,
    CBAM,
    Identity,
    NonLocalBlock,
    SqueezeExcitation,
    create_attention,
    get_attention,
)


@pytest.mark.parametrize("name", sorted(ATTENTION_MODULES))
def test_every_registered_module_is_drop_in(name: str) -> None:
    """(B, C, H, W) in, same shape out, and forward_with_maps agrees with forward."""
    module = create_attention(name, 16).eval()
    assert isinstance(module, ATTENTION_MODULES[name])
    x = torch.randn(2, 16, 6, 10)
    with torch.no_grad():
        out, maps = module.forward_with_maps(x)
        torch.testing.assert_close(module(x), out, atol=1e-5, rtol=1e-4)
    assert out.shape == x.shape
    assert sorted(maps) == sorted(module.map_names)


def test_a_name_and_its_class_build_the_same_module() -> None:
    by_name = create_attention("cbam", 32, reduction=4, kernel_size=3)
    by_class = create_attention(CBAM, 32, reduction=4, kernel_size=3)
    assert type(by_name) is type(by_class) is CBAM
    shapes = {key: value.shape for key, value in by_name.state_dict().items()}
    assert shapes == {key: value.shape for key, value in by_class.state_dict().items()}
    assert get_attention("cbam") is get_attention(CBAM) is CBAM


def test_kwargs_reach_the_module() -> None:
    assert create_attention("se", 32, reduction=4).fc[0].out_features == 8
    assert create_attention(SqueezeExcitation, 32, rd_channels=5).fc[0].out_features == 5
    block = create_attention(NonLocalBlock, 8, dimension=1, sub_sample=False)
    assert block(torch.randn(2, 8, 7)).shape == (2, 8, 7)


def test_none_is_identity() -> None:
    assert isinstance(create_attention(None, 8), Identity)
    assert isinstance(create_attention("none", 8), Identity)
    assert get_attention(None) is None


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown attention 'laser'; known: .*cbam"):
        create_attention("laser", 8)


@pytest.mark.parametrize("bad", [torch.nn.Conv2d, CBAM(8), 3])
def test_other_things_are_refused_with_what_is_accepted(bad: object) -> None:
    """A class that is not an attention module (no forward_with_maps), an instance or anything
    else is a TypeError that says what attn_layer may be."""
    with pytest.raises(TypeError, match="attention name, an AttentionModule class or None"):
        create_attention(bad, 8)  # type: ignore[arg-type]
