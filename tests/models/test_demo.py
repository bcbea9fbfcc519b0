"""``attnserve demo build`` reaches its targets, and the exported files, reloaded with plain
``torch.jit.load``, agree with the generator's labels on images from a fresh seed."""

import re

import numpy as np
import pytest
import torch

from models.demo.build import ACCURACY_TARGET, MIOU_TARGET, SEGMENTER
from models.demo.shapes import SEGMENTATION_CLASSES, SHAPE_CLASSES, generate_batch
from models.demo.train import mean_iou, to_input
from models.repository.config import read_config
from tests.conftest import DemoBuild

FRESH_SEED = 424_242


def reported(output: str, metric: str, model: str) -> float:
    match = re.search(rf"{model}: held-out {metric} ([0-9.]+)", output)
    assert match, output
    return float(match.group(1))


def reload(demo_build: DemoBuild, name: str) -> tuple[torch.jit.ScriptModule, object]:
    config = read_config(demo_build.repo / name / "config.json")
    version = config.latest_version
    model = torch.jit.load(
        str(demo_build.repo / name / str(version) / config.versions[version].file)
    )
    return model.eval(), config


def test_build_prints_targets_met_and_records_them(demo_build: DemoBuild) -> None:
    accuracy = reported(demo_build.output, "accuracy", "shapes-classifier")
    miou = reported(demo_build.output, "miou", "shapes-segmenter")
    assert accuracy >= ACCURACY_TARGET
    assert miou >= MIOU_TARGET
    _, classifier = reload(demo_build, "shapes-classifier")
    _, segmenter = reload(demo_build, "shapes-segmenter")
    # printed with 4 decimals
    assert classifier.versions[1].metrics["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert segmenter.versions[1].metrics["miou"] == pytest.approx(miou, abs=5e-5)


def test_reloaded_classifier_labels_fresh_images(demo_build: DemoBuild) -> None:
    model, config = reload(demo_build, "shapes-classifier")
    assert config.labels == list(SHAPE_CLASSES)
    images, labels, _ = generate_batch(FRESH_SEED, 400, config.input.height)
    with torch.inference_mode():
        predicted = model(to_input(images, config.input.mean, config.input.std)).argmax(1)
    assert float((predicted.numpy() == labels).mean()) >= ACCURACY_TARGET


def test_reloaded_segmenter_masks_fresh_images(demo_build: DemoBuild) -> None:
    model, config = reload(demo_build, "shapes-segmenter")
    assert config.labels == list(SEGMENTATION_CLASSES)
    images, _, masks = generate_batch(FRESH_SEED, 200, config.input.height, SEGMENTER.max_shapes)
    with torch.inference_mode():
        logits, maps = model.forward_with_maps(
            to_input(images, config.input.mean, config.input.std)
        )
    miou = mean_iou(logits.argmax(1), torch.from_numpy(masks.astype(np.int64)), len(config.labels))
    assert miou >= MIOU_TARGET
    assert sorted(maps) == config.attention_maps
