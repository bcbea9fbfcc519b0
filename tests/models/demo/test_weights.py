"""The shipped weights are refused unless they are exactly what the manifest describes, and
training is seeded: the same seed gives the same weights."""

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from models.demo.build import CLASSIFIER, SEGMENTER, build_demo_repository, train_demo
from models.demo.shipped import (
    MANIFEST,
    WEIGHTS_DIR,
    WeightsError,
    load_weights,
    read_manifest,
    save_weights,
)
from models.demo.train import TrainSettings
from models.repository.formats import sha256_of
from tests.conftest import ATTNSERVE

TINY = replace(CLASSIFIER, train_count=32, held_out_count=8, settings=TrainSettings(epochs=1))


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    """A copy of the shipped weights that a test may break."""
    return Path(shutil.copytree(WEIGHTS_DIR, tmp_path / "weights"))


def test_shipped_files_match_their_manifest() -> None:
    for name, entry in read_manifest(WEIGHTS_DIR).items():
        assert sha256_of(WEIGHTS_DIR / entry.file) == entry.sha256, name


def test_tampered_weights_are_refused_with_a_clear_error(weights: Path, tmp_path: Path) -> None:
    path = weights / read_manifest(weights)[SEGMENTER.name].file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    repo = tmp_path / "repo"
    with pytest.raises(WeightsError, match=r"sha256 [0-9a-f]{64}, but the manifest says"):
        build_demo_repository(repo, weights=weights, log=lambda _: None)
    assert not repo.exists()  # every file is checked before anything is exported

    command = [ATTNSERVE, "demo", "build", "--repo", str(repo), "--weights", str(weights)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("attnserve demo: error: demo weights") and "altered" in line


def test_missing_manifest_or_entry_or_file_is_a_clear_error(weights: Path) -> None:
    entry = read_manifest(weights)[CLASSIFIER.name]
    with pytest.raises(WeightsError, match="trained for 'shapes_cbam_classifier', not 'other'"):
        load_weights(weights, CLASSIFIER.name, "other")
    with pytest.raises(WeightsError, match="no entry for 'absent'"):
        load_weights(weights, "absent", CLASSIFIER.architecture)
    (weights / entry.file).unlink()
    with pytest.raises(WeightsError, match="is missing"):
        load_weights(weights, CLASSIFIER.name, CLASSIFIER.architecture)
    (weights / MANIFEST).write_text("{not json")
    with pytest.raises(WeightsError, match="unreadable demo weights manifest"):
        read_manifest(weights)
    (weights / MANIFEST).unlink()
    with pytest.raises(WeightsError, match="demo build --train"):
        read_manifest(weights)


def test_training_is_seeded_and_saved_weights_load_back(tmp_path: Path) -> None:
    first, metrics, seconds = train_demo(TINY, 3, log=lambda _: None)
    second, _, _ = train_demo(TINY, 3, log=lambda _: None)
    other, _, _ = train_demo(TINY, 4, log=lambda _: None)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not all(torch.equal(v, other.state_dict()[k]) for k, v in first.state_dict().items())

    entry = save_weights(tmp_path, TINY.name, first, architecture=TINY.architecture, seed=3,
                         train_seconds=seconds, metrics=metrics)  # fmt: skip
    state, loaded = load_weights(tmp_path, TINY.name, TINY.architecture)
    assert loaded == entry and loaded.metrics == metrics and loaded.seed == 3
    assert loaded.torch_version == torch.__version__
    assert all(torch.equal(v, state[k]) for k, v in first.state_dict().items())
    assert json.loads((tmp_path / MANIFEST).read_text())[TINY.name]["sha256"] == entry.sha256
