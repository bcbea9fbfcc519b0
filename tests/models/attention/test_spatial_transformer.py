import pytest
import torch
import torch.nn.functional as F

from models.attention.spatial_transformer import SpatialTransformer
from tests.models.checks import (
    assert_close,
    near_identity_stn_,
)


def set_constant_theta(module: SpatialTransformer, theta: list) -> torch.Tensor:
    """Zero the last Linear's weight so theta is its bias, whatever the input."""
    with torch.no_grad():
        module.regressor[2].weight.zero_()
        module.regressor[2].bias.copy_(torch.tensor(theta))
    return torch.tensor(theta).view(2, 3)


def localisation_formula(module: SpatialTransformer, x: torch.Tensor) -> torch.Tensor:
    """conv3x3 -> ReLU -> conv3x3 stride 2 -> ReLU -> adaptive avg pool -> FC -> ReLU -> FC."""
    conv1, conv2 = module.localisation[0], module.localisation[2]
    fc1, fc2 = module.regressor[0], module.regressor[2]
    y = torch.relu(F.conv2d(x, conv1.weight, conv1.bias, padding=1))
    y = torch.relu(F.conv2d(y, conv2.weight, conv2.bias, stride=2, padding=1))
    y = F.adaptive_avg_pool2d(y, module.localisation[4].output_size).flatten(1)
    return (torch.relu(y @ fc1.weight.t() + fc1.bias) @ fc2.weight.t() + fc2.bias).view(-1, 2, 3)


def test_fresh_module_is_the_identity() -> None:
    module = SpatialTransformer(3)
    x = torch.randn(4, 3, 7, 5)
    out, maps = module.forward_with_maps(x)
    assert_close(out, x)
    assert_close(module(x), x)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert maps["theta"].shape == (4, 2, 3)
    assert_close(maps["theta"], identity.expand(4, 2, 3))


def test_known_translation_shifts_by_one_pixel_with_zero_padding() -> None:
    module = SpatialTransformer(2)
    x = torch.randn(3, 2, 4, 6)
    set_constant_theta(module, [1.0, 0.0, 2.0 / 6, 0.0, 1.0, 0.0])  # x_s = x_t + one pixel
    out = module(x)
    assert_close(out[..., :-1], x[..., 1:])
    assert_close(out[..., -1], torch.zeros_like(out[..., -1]))


def test_hand_set_scale_and_translation_matches_grid_sample() -> None:
    module = SpatialTransformer(3, localisation_channels=4, pooled_size=2)
    theta = set_constant_theta(module, [0.6, 0.0, 0.2, 0.0, 0.8, -0.3]).expand(2, 2, 3)
    x = torch.randn(2, 3, 6, 9)
    grid = F.affine_grid(theta, [2, 3, 6, 9], align_corners=False)
    expected = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out, maps = module.forward_with_maps(x)
    assert_close(out, expected)
    assert_close(maps["theta"], theta)


def test_localisation_network_predicts_theta_per_input() -> None:
    module = near_identity_stn_(SpatialTransformer(3, localisation_channels=4, pooled_size=3))
    x = torch.randn(4, 3, 10, 7, generator=torch.Generator().manual_seed(1))
    out, maps = module.forward_with_maps(x)
    theta = localisation_formula(module, x)
    assert_close(maps["theta"], theta)
    assert not torch.allclose(theta[0], theta[1])
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    assert_close(out, F.grid_sample(x, grid, align_corners=False))


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="pooled_size"):
        SpatialTransformer(3, pooled_size=0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        SpatialTransformer(3)(torch.randn(2, 4, 5, 5))
