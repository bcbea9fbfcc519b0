"""ModelRuntime: one model version on one device, running batches in its own worker thread."""

from __future__ import annotations

import threading
from typing import Dict, Tuple

import pytest
import torch
from torch import Tensor, nn

from models.repository.config import InputSpec, ModelConfig
from service.engine.result import Result
from service.engine.runtime import (
    ModelRuntime,
    inference_thread,
    resolve_device,
    run_items,
    warm_up_sizes,
)
from service.engine.statistics import Execution
from service.errors import NonFiniteOutput

SIZE = 8
LABELS = ["a", "b", "c", "d", "e"]


class TinyNet(nn.Module):
    """A conv, a spatial attention map, a linear head: enough for batch-vs-alone checks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.head = nn.Linear(4, len(LABELS))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_with_maps(x)[0]

    def forward_with_maps(self, x: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        features = torch.relu(self.conv(x))  # (B, 4, H, W)
        attention = torch.sigmoid(features.mean(dim=1))  # (B, H, W)
        pooled = (features * attention.unsqueeze(1)).mean(dim=(2, 3))  # (B, 4)
        return self.head(pooled), {"spatial": attention}


def tiny_config(name: str = "tiny") -> ModelConfig:
    return ModelConfig(
        name=name,
        task="classification",
        input=InputSpec(height=SIZE, width=SIZE),
        labels=LABELS,
        attention_maps=["spatial"],
    )


def tiny_runtime(version: int = 1) -> ModelRuntime:
    torch.manual_seed(0)
    model = torch.jit.script(TinyNet().eval())
    return ModelRuntime("tiny", version, tiny_config(), model, torch.device("cpu"))


class RecordingModel:
    """A ServableModel that records how it is called."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], bool, str, bool]] = []

    def _record(self, x: Tensor, with_maps: bool) -> Tensor:
        thread = threading.current_thread().name
        self.calls.append((tuple(x.shape), with_maps, thread, torch.is_inference_mode_enabled()))
        return torch.zeros(x.shape[0], len(LABELS))

    def __call__(self, x: Tensor) -> Tensor:
        return self._record(x, False)

    def forward_with_maps(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self._record(x, True), {"spatial": torch.zeros(x.shape[0], SIZE, SIZE)}


def test_run_batch_without_maps_returns_logits_only() -> None:
    runtime = tiny_runtime()
    batch = torch.randn(3, 3, SIZE, SIZE)
    try:
        logits, maps = runtime.run_batch(batch, with_maps=False)
    finally:
        runtime.close()
    assert maps == {}
    assert logits.shape == (3, len(LABELS))
    assert logits.dtype == torch.float32 and logits.device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(logits, runtime.model(batch))


def test_run_batch_with_maps_returns_cpu_float32_maps() -> None:
    runtime = tiny_runtime()
    batch = torch.randn(2, 3, SIZE, SIZE)
    try:
        logits, maps = runtime.run_batch(batch, with_maps=True)
    finally:
        runtime.close()
    assert set(maps) == {"spatial"}
    assert maps["spatial"].shape == (2, SIZE, SIZE)
    assert maps["spatial"].dtype == torch.float32 and maps["spatial"].device.type == "cpu"
    with torch.no_grad():
        expected_logits, expected_maps = runtime.model.forward_with_maps(batch)
    torch.testing.assert_close(logits, expected_logits)
    torch.testing.assert_close(maps["spatial"], expected_maps["spatial"])


def test_run_batch_outputs_can_be_modified_in_place() -> None:
    """Encoders downstream may normalise a map in place: outputs are not inference tensors."""
    runtime = tiny_runtime()
    try:
        logits, maps = runtime.run_batch(torch.randn(1, 3, SIZE, SIZE), with_maps=True)
    finally:
        runtime.close()
    assert not logits.is_inference() and not maps["spatial"].is_inference()
    maps["spatial"].sub_(1.0)
    logits.mul_(2.0)


def test_run_batch_runs_under_inference_mode() -> None:
    model = RecordingModel()
    runtime = ModelRuntime("rec", 1, tiny_config("rec"), model, torch.device("cpu"))
    try:
        runtime.run_batch(torch.zeros(2, 3, SIZE, SIZE), with_maps=True)
    finally:
        runtime.close()
    assert model.calls[0][1:] == (True, threading.current_thread().name, True)


def test_executor_is_one_named_thread() -> None:
    runtime = tiny_runtime(version=3)
    try:
        names = {
            runtime.executor.submit(lambda: threading.current_thread().name).result()
            for _ in range(8)
        }
    finally:
        runtime.close()
    assert len(names) == 1
    assert names.pop().startswith("attnserve-tiny-v3")


def test_close_shuts_the_worker_down() -> None:
    runtime = tiny_runtime()
    runtime.close()
    with pytest.raises(RuntimeError):
        runtime.executor.submit(lambda: None)


@pytest.mark.parametrize("owns", [True, False])
def test_close_shuts_a_given_thread_down_only_if_the_runtime_owns_it(owns: bool) -> None:
    thread = inference_thread("given")
    model = torch.jit.script(TinyNet().eval())
    runtime = ModelRuntime("tiny", 1, tiny_config(), model, torch.device("cpu"), thread, owns)
    runtime.close()
    if owns:  # a GPU version's own thread: gone with the version
        with pytest.raises(RuntimeError):
            thread.submit(lambda: None)
    else:  # the CPU's shared thread: still serving the other versions
        assert thread.submit(lambda: 7).result() == 7
        thread.shutdown()


def test_warm_up_runs_each_size_with_and_without_maps_in_the_calling_thread() -> None:
    model = RecordingModel()
    runtime = ModelRuntime("rec", 1, tiny_config("rec"), model, torch.device("cpu"))
    try:
        runtime.warm_up([1, 2, 3])
    finally:
        runtime.close()
    here = threading.current_thread().name
    assert [(shape, maps) for shape, maps, _, _ in model.calls] == [
        ((size, 3, SIZE, SIZE), with_maps) for size in (1, 2, 3) for with_maps in (False, True)
    ]
    assert all(thread == here and inference for _, _, thread, inference in model.calls)


def test_warm_up_on_a_scripted_model() -> None:
    runtime = tiny_runtime()
    try:
        runtime.warm_up(warm_up_sizes(4))
        logits, maps = runtime.run_batch(torch.zeros(4, 3, SIZE, SIZE), with_maps=True)
    finally:
        runtime.close()
    assert logits.shape == (4, len(LABELS)) and maps["spatial"].shape == (4, SIZE, SIZE)


@pytest.mark.parametrize(
    ("max_batch_size", "expected"),
    [(1, [1]), (2, [1, 2]), (8, [1, 2, 4, 8]), (12, [1, 2, 4, 8, 12]), (5, [1, 2, 4, 5])],
)
def test_warm_up_sizes(max_batch_size: int, expected: list[int]) -> None:
    assert warm_up_sizes(max_batch_size) == expected


def test_warm_up_sizes_rejects_zero() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        warm_up_sizes(0)


def test_resolve_device_cpu_and_auto() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_resolve_device_rejects_a_missing_gpu() -> None:
    with pytest.raises(ValueError, match="cuda:7"):
        resolve_device("cuda:7")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_resolve_device_rejects_cuda_without_cuda() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda")


def test_resolve_device_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")


class Overflowing:
    """A runner whose logits overflow for any input over 1e20, the way a real model's do when
    a client sends finite but huge values (issue 13: 1e30 everywhere gave a 500)."""

    def run_batch(self, batch: Tensor, with_maps: bool) -> Tuple[Tensor, Dict[str, Tensor]]:
        logits = batch.flatten(1).sum(dim=1, keepdim=True).repeat(1, 2) * 1e20
        maps = {"spatial": batch.mean(dim=1)} if with_maps else {}
        return logits, maps


@pytest.mark.parametrize("with_maps", [False, True])
def test_a_non_finite_output_is_that_items_own_4xx(with_maps: bool) -> None:
    huge = torch.full((3, SIZE, SIZE), 1e30)
    tensors = [torch.zeros(3, SIZE, SIZE), huge, torch.ones(3, SIZE, SIZE)]
    runs: list[Execution] = []
    outcomes = run_items(Overflowing(), tensors, with_maps, runs)
    assert isinstance(outcomes[1], NonFiniteOutput) and outcomes[1].status == 422
    assert "NaN or Inf" in outcomes[1].message
    for index in (0, 2):
        result = outcomes[index]
        assert isinstance(result, Result) and torch.isfinite(result.output).all()
        assert set(result.maps) == ({"spatial"} if with_maps else set())
    assert runs and runs[0][0] == 3  # one forward pass, no retries: the model did not fail
