import pytest
import torch

from models.attention.criss_cross import CrissCrossAttention
from tests.models.checks import (
    assert_close,
    assert_is_distribution,
    randomise_,
)

# randomise_ makes the unscaled energies large; a half-scale input keeps the (two-pass) softmax
# well-conditioned, so float32 reordering (batched vs single matmul) stays inside tolerance.
INPUT_SCALE = 0.5


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def seed_pass(module: CrissCrossAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One criss-cross pass of seed 004, pixel by pixel: the H + W - 1 neighbours of (i, j) are
    its whole column and its row without itself; unscaled q.k, one softmax, weighted sum of v,
    gamma * out + x. Also returns the mass each position receives, summed over queries."""
    query, key, value = module.query(x), module.key(x), module.value(x)
    batch, _, height, width = x.shape
    out = torch.zeros_like(x)
    received = torch.zeros(batch, height, width)
    for i in range(height):
        for j in range(width):
            neighbours = [(k, j) for k in range(height)]
            neighbours += [(i, col) for col in range(width) if col != j]
            energies = torch.stack(
                [(query[:, :, i, j] * key[:, :, a, b]).sum(dim=1) for a, b in neighbours], dim=1
            )  # (B, H + W - 1)
            weights = energies.softmax(dim=1)
            for n, (a, b) in enumerate(neighbours):
                out[:, :, i, j] += weights[:, n : n + 1] * value[:, :, a, b]
                received[:, a, b] += weights[:, n]
    return module.gamma * out + x, received


def seed_formula(
    module: CrissCrossAttention, x: torch.Tensor, recurrence: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """RCCA: the same pass `recurrence` times; the map is the received mass averaged over the
    H * W queries and the passes."""
    height, width = x.shape[2], x.shape[3]
    out = x
    total = torch.zeros(x.shape[0], height, width)
    for _ in range(recurrence):
        out, received = seed_pass(module, out)
        total = total + received
    return out, total / (height * width * recurrence)


@pytest.mark.parametrize("recurrence", [1, 2])
@pytest.mark.parametrize("size", [(5, 7), (1, 4), (4, 1)])
def test_matches_seed_formula_and_map(recurrence: int, size: tuple[int, int]) -> None:
    module = randomise_(CrissCrossAttention(16, reduction=4, recurrence=recurrence))
    x = torch.randn(2, 16, *size) * INPUT_SCALE
    with torch.no_grad():
        out, maps = module.forward_with_maps(x)
        expected_out, expected_map = seed_formula(module, x, recurrence)
        fast = module(x)
    assert_close(out, expected_out)
    assert_close(fast, expected_out)
    assert maps["attention"].shape == (2, *size)
    assert_close(maps["attention"], expected_map)
    assert_is_distribution(maps["attention"])


def test_recurrence_shares_weights() -> None:
    once = randomise_(CrissCrossAttention(8, reduction=2, recurrence=1))
    twice = CrissCrossAttention(8, reduction=2, recurrence=2)
    twice.load_state_dict(once.state_dict())
    x = torch.randn(2, 8, 4, 6)
    with torch.no_grad():
        assert_close(twice(x), once(once(x)))
        assert not torch.allclose(twice(x), once(x))


def test_fresh_module_is_identity() -> None:
    module = CrissCrossAttention(16).eval()
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        assert torch.equal(module(x), x)
        out, maps = module.forward_with_maps(x)
    assert torch.equal(out, x)
    assert_is_distribution(maps["attention"])


def test_small_channel_count_builds() -> None:
    module = CrissCrossAttention(4, reduction=8)
    assert module.query.out_channels == 1
    assert module(torch.randn(2, 4, 3, 5)).shape == (2, 4, 3, 5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recurrence": 0}, "recurrence"),
        ({"reduction": 0}, "reduction"),
        ({"rd_channels": 0}, "rd_channels"),
        ({"channels": 0}, "channels"),
    ],
)
def test_invalid_arguments_raise(kwargs: dict[str, int], message: str) -> None:
    arguments = {"channels": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        CrissCrossAttention(**arguments)
