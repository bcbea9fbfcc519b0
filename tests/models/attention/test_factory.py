import pytest
import torch

from models.attention import ATTENTION_MODULES, Identity, create_attention


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


def test_kwargs_reach_the_module() -> None:
    module = create_attention("se", 32, reduction=4)
    assert module.fc[0].out_features == 8


def test_none_is_identity_and_unknown_names_are_listed() -> None:
    assert isinstance(create_attention(None, 8), Identity)
    assert isinstance(create_attention("none", 8), Identity)
    with pytest.raises(ValueError, match=r"known: .*cbam"):
        create_attention("laser", 8)
