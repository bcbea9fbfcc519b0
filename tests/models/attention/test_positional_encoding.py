import math

import pytest
import torch

from models.attention.positional_encoding import PositionEmbeddingSine
from tests.models.checks import assert_close


def hand_computed(height: int, width: int, feats: int, temperature: float, normalize: bool):
    """DETR by hand: channel i < F holds the row coordinate, channel F + i the column one;
    t_i = temperature ** (2 * (i // 2) / F); even i -> sin(c / t_i), odd i -> cos(c / t_i)."""
    out = torch.zeros(2 * feats, height, width, dtype=torch.float64)
    for r in range(height):
        for c in range(width):
            cy, cx = float(r + 1), float(c + 1)
            if normalize:
                cy = cy / (height + 1e-6) * 2 * math.pi
                cx = cx / (width + 1e-6) * 2 * math.pi
            for i in range(feats):
                t = temperature ** (2 * (i // 2) / feats)
                fn = math.sin if i % 2 == 0 else math.cos
                out[i, r, c] = fn(cy / t)
                out[feats + i, r, c] = fn(cx / t)
    return out.float()


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_hand_computation_on_a_tiny_map(normalize: bool) -> None:
    module = PositionEmbeddingSine(num_pos_feats=4, temperature=100, normalize=normalize)
    pos = module(torch.randn(1, 3, 2, 3))
    assert pos.shape == (1, 8, 2, 3)
    assert_close(pos[0], hand_computed(2, 3, 4, 100.0, normalize))


def test_default_shape_batch_independence_and_dtype() -> None:
    module = PositionEmbeddingSine()
    x = torch.randn(5, 7, 4, 6)
    pos = module(x)
    assert pos.shape == (5, 128, 4, 6)
    for i in range(5):
        assert_close(pos[i : i + 1], module(x[i : i + 1]))
    assert_close(pos[0], hand_computed(4, 6, 64, 10000.0, True))
    assert module(x.double()).dtype == torch.float64
    # Depends on the shape only: a different image of the same size gets the same encoding.
    assert_close(module(torch.zeros(1, 7, 4, 6)), pos[:1])


def test_scripted_matches_eager() -> None:
    module = PositionEmbeddingSine(num_pos_feats=8, temperature=50)
    scripted = torch.jit.script(module)
    x = torch.randn(2, 3, 5, 4)
    assert_close(scripted(x), module(x))


def test_invalid_arguments_and_inputs_raise() -> None:
    with pytest.raises(ValueError, match="even"):
        PositionEmbeddingSine(num_pos_feats=7)
    with pytest.raises(ValueError, match="temperature"):
        PositionEmbeddingSine(temperature=0)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        PositionEmbeddingSine()(torch.randn(3, 4, 5))
