"""``attnserve demo build`` exports the shipped weights with the metrics recorded when they
were trained, and the exported files, reloaded with plain ``torch.jit.load``, reach the targets
on uploads drawn from a fresh seed (not the seed the recorded metrics were measured on): PNG and
JPEG at every held-out side."""

import pytest

from models.demo.build import CLASSIFIER, DEMO_MODELS, SEGMENTER, DemoModel
from models.demo.evaluate import evaluate_uploads
from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES
from models.demo.shipped import WEIGHTS_DIR, read_manifest
from tests.conftest import DemoBuild
from tests.models.demo.checks import reload, reported

FRESH_SEED = 424_242


def test_build_exports_the_shipped_weights_with_their_metrics(demo_build: DemoBuild) -> None:
    manifest = read_manifest(WEIGHTS_DIR)
    assert "epoch" not in demo_build.output  # nothing was trained
    for demo in DEMO_MODELS:
        metric = demo.task.metric
        assert f"{demo.name}: shipped weights from {WEIGHTS_DIR} (sha256 verified)" in (
            demo_build.output
        )
        assert f"{demo.name}: held-out {metric} by format and side" in demo_build.output
        entry = manifest[demo.name]
        assert entry.architecture == demo.architecture
        assert entry.metrics[metric] >= demo.target
        # printed with 4 decimals
        assert abs(reported(demo_build.output, metric, demo.name) - entry.metrics[metric]) < 5e-5
        _, config = reload(demo_build.repo, demo.name)
        assert config.versions[config.latest_version].metrics == entry.metrics
        assert f"seed {entry.seed}" in config.description


@pytest.mark.parametrize(("demo", "labels"), [(CLASSIFIER, SHAPE_CLASSES),
                                              (SEGMENTER, SEGMENTATION_CLASSES)])  # fmt: skip
def test_reloaded_model_reaches_the_target_on_fresh_uploads(
    demo_build: DemoBuild, demo: DemoModel, labels: tuple[str, ...]
) -> None:
    model, config = reload(demo_build.repo, demo.name)
    assert config.labels == list(labels)
    metrics = evaluate_uploads(model, demo.task, FRESH_SEED, demo.held_out_count // 2)
    assert metrics[demo.task.metric] >= demo.target, metrics
