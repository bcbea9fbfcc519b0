"""Checks every attention module's tests share: scripting, batching, fast vs explicit path."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

ATOL = 1e-5
RTOL = 1e-4


def assert_close(actual: Tensor, expected: Tensor, atol: float = ATOL, rtol: float = RTOL) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=rtol)


def randomise_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-trivial values (zero-initialised gammas too),
    so a formula test cannot pass because a residual branch is switched off."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
        for buffer_name, buffer in module.named_buffers():
            if buffer_name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
            elif buffer_name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
    return module.eval()


def near_identity_stn_(module: nn.Module) -> nn.Module:
    """Random weights for a SpatialTransformer, with theta kept near the identity (as a trained
    STN's): far-off thetas sample far outside the map, where float rounding in theta moves
    bilinear samples a lot."""
    randomise_(module)
    with torch.no_grad():
        module.regressor[2].weight.mul_(0.01)
        module.regressor[2].bias.mul_(0.1).add_(torch.tensor([1.0, 0, 0, 0, 1.0, 0]))
    return module


def assert_scripted_matches_eager(module: nn.Module, *inputs: Tensor) -> None:
    """``torch.jit.script`` compiles the module, and both methods give the eager results."""
    scripted = torch.jit.script(module)
    with torch.no_grad():
        assert_close(scripted(*inputs), module(*inputs))
        out_s, maps_s = scripted.forward_with_maps(*inputs)
        out_e, maps_e = module.forward_with_maps(*inputs)
    assert_close(out_s, out_e)
    assert_maps_close(maps_s, maps_e)


def assert_maps_close(actual: Dict[str, Tensor], expected: Dict[str, Tensor]) -> None:
    assert sorted(actual) == sorted(expected)
    for name in expected:
        assert_close(actual[name], expected[name])


def assert_fast_equals_explicit(module: nn.Module, *inputs: Tensor) -> None:
    """``forward`` (fast path) and ``forward_with_maps`` (explicit path) give the same output."""
    with torch.no_grad():
        fast = module(*inputs)
        explicit, _ = module.forward_with_maps(*inputs)
    assert_close(fast, explicit)


def assert_batch_independent(module: nn.Module, *inputs: Tensor) -> None:
    """Item i of a batch equals item i run alone, for the output and every map."""
    with torch.no_grad():
        batched_out, batched_maps = module.forward_with_maps(*inputs)
        for i in range(inputs[0].shape[0]):
            alone_out, alone_maps = module.forward_with_maps(*(t[i : i + 1] for t in inputs))
            assert_close(batched_out[i : i + 1], alone_out)
            for name, value in alone_maps.items():
                assert_close(batched_maps[name][i : i + 1], value)


def assert_is_distribution(map_: Tensor) -> None:
    """Non-negative and summing to 1 over every axis but the batch."""
    assert bool((map_ >= 0).all())
    sums = map_.flatten(1).sum(dim=1)
    assert_close(sums, torch.ones_like(sums))
