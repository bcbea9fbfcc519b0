"""``attnserve demo build`` exports the shipped weights with the metrics recorded when they
were trained, and the exported files, reloaded with plain ``torch.jit.load``, reach the targets
on images from a fresh seed (not the seed the held-out metrics were measured on)."""

import numpy as np
import torch

from models.demo.build import ACCURACY_TARGET, CLASSIFIER, MIOU_TARGET, SEGMENTER
from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES, generate_batch
from models.demo.shipped import WEIGHTS_DIR, read_manifest
from models.demo.train import mean_iou, to_input
from tests.conftest import DemoBuild
from tests.models.demo.checks import reload, reported

FRESH_SEED = 424_242


def test_build_exports_the_shipped_weights_with_their_metrics(demo_build: DemoBuild) -> None:
    manifest = read_manifest(WEIGHTS_DIR)
    assert "epoch" not in demo_build.output  # nothing was trained
    for demo, metric, target in ((CLASSIFIER, "accuracy", ACCURACY_TARGET),
                                 (SEGMENTER, "miou", MIOU_TARGET)):  # fmt: skip
        assert f"{demo.name}: shipped weights from {WEIGHTS_DIR} (sha256 verified)" in (
            demo_build.output
        )
        entry = manifest[demo.name]
        assert entry.architecture == demo.architecture
        assert entry.metrics[metric] >= target
        # printed with 4 decimals
        assert abs(reported(demo_build.output, metric, demo.name) - entry.metrics[metric]) < 5e-5
        _, config = reload(demo_build.repo, demo.name)
        assert config.versions[config.latest_version].metrics == entry.metrics
        assert f"seed {entry.seed}" in config.description


def test_reloaded_classifier_labels_fresh_images(demo_build: DemoBuild) -> None:
    model, config = reload(demo_build.repo, CLASSIFIER.name)
    assert config.labels == list(SHAPE_CLASSES)
    images, labels, _ = generate_batch(FRESH_SEED, 400, config.input.height)
    with torch.inference_mode():
        predicted = model(to_input(images, config.input.mean, config.input.std)).argmax(1)
    assert float((predicted.numpy() == labels).mean()) >= ACCURACY_TARGET


def test_reloaded_segmenter_masks_fresh_images(demo_build: DemoBuild) -> None:
    model, config = reload(demo_build.repo, SEGMENTER.name)
    assert config.labels == list(SEGMENTATION_CLASSES)
    images, _, masks = generate_batch(FRESH_SEED, 200, config.input.height, SEGMENTER.max_shapes)
    with torch.inference_mode():
        logits, maps = model.forward_with_maps(
            to_input(images, config.input.mean, config.input.std)
        )
    miou = mean_iou(logits.argmax(1), torch.from_numpy(masks.astype(np.int64)), len(config.labels))
    assert miou >= MIOU_TARGET
    assert sorted(maps) == config.attention_maps
