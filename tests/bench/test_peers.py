"""The peers' shared pieces, none of which needs ``.venv-peers``: the classifier code every peer
runs, the process-group cleanup that stops LitServe's workers, the p99 goal against a measured
LitServe, and the report's line when LitServe is absent."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import runner, servers
from bench.classifier import TOP_K, Classifier
from bench.config import BenchConfig
from bench.fixtures import synthetic_jpeg
from bench.loadgen import RunResult
from bench.machine import group_pids
from bench.report import Reference, p99_goal_row
from bench.scenarios import Cell, predict
from models.repository.config import InputSpec, ModelConfig

LABELS = [f"class{i}" for i in range(7)]


def tiny_classifier() -> Classifier:
    config = ModelConfig(
        name="tiny",
        task="classification",
        input=InputSpec(height=32, width=32),
        labels=LABELS,
    )
    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, len(LABELS))
    )
    return Classifier(config, model.eval())


def test_classifier_answers_the_top_5_of_a_jpeg() -> None:
    classifier = tiny_classifier()
    classifier.warm_up([1, 2])
    tensor = classifier.preprocess(synthetic_jpeg(48, 40))
    assert tensor.shape == (3, 32, 32)
    logits = classifier.forward(torch.stack([tensor, tensor]))
    answer = classifier.answer(logits[0])
    assert answer["model"] == "tiny"
    predictions = answer["predictions"]
    assert isinstance(predictions, list) and len(predictions) == TOP_K
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    assert all(LABELS[p["index"]] == p["label"] for p in predictions)


def test_stop_group_leaves_no_process_of_the_group_behind() -> None:
    """A leader that started a child, stopped as ``ServerProcess.stop`` does: the leader by its
    PID, then what is left of its group (the orphaned child)."""
    child = "import subprocess, time; subprocess.Popen(['sleep', '60']); time.sleep(60)"
    leader = subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while len(group_pids(leader.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(group_pids(leader.pid)) == 2
    finally:
        servers.terminate(leader)
        servers.stop_group(leader.pid, timeout_s=5)
    assert group_pids(leader.pid) == []


def test_without_the_peers_venv_litserve_is_skipped_with_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(servers, "PEERS_VENV", tmp_path / "absent")
    config = BenchConfig()
    cells, note = runner.part_peers(config, tmp_path, tmp_path, b"", (1.0, 0.5, 10))
    assert cells == [] and note == runner.PEERS_SKIPPED
    assert "LitServe: not installed" in runner.peers_row(config)[1]
    text = "\n\n".join(runner.result_sections([], [], [], [], Reference(), note))
    assert "## 2-3." in text
    assert "LitServe not measured: run `make bench` or create .venv-peers, see README" in text


def cell_at_c32(server: str, p99_ms: float) -> Cell:
    run = RunResult("closed c=32", 1.0, latencies_s=[p99_ms / 1000] * 10)
    return Cell(server, predict("m", b""), "c=32", runs=[run], server_cpu_s=[0.0])


def test_p99_goal_is_judged_against_litserve_when_it_ran_here() -> None:
    ours, base = cell_at_c32("attnserve", 390.0), cell_at_c32("baseline", 660.0)
    goal, measured, met = p99_goal_row(ours, base, cell_at_c32("litserve 0.2.19", 400.0))
    assert met == "yes"  # above issue 5's quoted 325 ms, but that is another run's figure
    assert "measured in this run" in goal
    assert "litserve 0.2.19 here 400.0 ms" in measured and "baseline here 660.0 ms" in measured
    assert "0.97 x litserve 0.2.19's" in measured
    assert p99_goal_row(ours, base, cell_at_c32("litserve 0.2.19", 380.0))[2] == "**no**"
    assert p99_goal_row(ours, base, None)[2] == "**no**"  # no LitServe here: the quoted 325 ms
