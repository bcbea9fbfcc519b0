"""Part 1's process layout: each inference process is pinned to a CPU of its own, computes the
batches decoded into its shared slots, is counted, and exits with the block; one that cannot
load the model is reported, not waited for."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import torch

from bench import fixtures, limit, pipeline
from bench.pipeline_processes import inference_processes
from models.repository.config import ModelConfig
from tests.conftest import DemoBuild

MODEL = "shapes-classifier"
BATCH = 2


def decoder_of(repo: Path) -> tuple[Path, ModelConfig, bytes]:
    config = fixtures.model_config(repo, MODEL)
    return fixtures.latest_model_file(repo, MODEL), config, fixtures.request_image(config)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin 2 processes")
def test_each_process_is_pinned_to_its_own_cpu_and_computes_decoded_batches(
    demo_build: DemoBuild,
) -> None:
    model_file, config, jpeg = decoder_of(demo_build.repo)
    decode = pipeline.decoder(config, jpeg)
    cpus = sorted(os.sched_getaffinity(0))[:2]
    with inference_processes(model_file, decode, BATCH, 2, pipeline.TOP_K) as layout:
        assert [os.sched_getaffinity(p.pid) for p in layout.processes] == [{cpu} for cpu in cpus]
        assert layout.images_per_s(0.3) > 0
        image = decode()
        for slots in layout.slots:  # both slots of both processes were filled by the decoders
            assert all(torch.equal(slots[slot][i], image) for slot in range(2) for i in range(2))
        processes = list(layout.processes)
    assert [process.exitcode for process in processes] == [0, 0]


def test_a_process_that_cannot_load_the_model_is_reported(
    demo_build: DemoBuild, tmp_path: Path
) -> None:
    _, config, jpeg = decoder_of(demo_build.repo)
    decode = pipeline.decoder(config, jpeg)
    missing = tmp_path / "missing.pt"
    with (
        pytest.raises(RuntimeError, match="did not start"),
        inference_processes(missing, decode, BATCH, 1, pipeline.TOP_K),
    ):
        pass
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to pin 2 processes")
def test_the_pipeline_measures_the_process_layout_given_the_model_file(
    demo_build: DemoBuild,
) -> None:
    model_file, config, jpeg = decoder_of(demo_build.repo)
    model = limit.load(model_file)
    threads = 2
    without = pipeline.measure_pipeline(model, config, jpeg, BATCH, threads, 0.2, rounds=1)
    given = pipeline.measure_pipeline(
        model, config, jpeg, BATCH, threads, 0.2, rounds=1, model_file=model_file
    )
    assert [cell.layout for cell in without] == list(pipeline.thread_layouts(threads))
    assert [cell.layout for cell in given] == [
        *pipeline.thread_layouts(threads),
        "2 processes x 1 thread, pinned, 2 decode threads",
    ]
    assert all(cell.images_per_s > 0 for cell in given)
