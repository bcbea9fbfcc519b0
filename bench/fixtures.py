"""The benchmark's inputs: a model repository (demo models + the 224x224 benchmark classifier,
random weights) and the JPEGs sent to it.

The demo repository is reused when present (building it trains for minutes, which is not part
of any measurement); the benchmark classifier is exported fresh into a temporary repository
with ``models.export.export_model``, exactly as ``attnserve export`` would.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from models.demo.build import CLASSIFIER_NAME, SEGMENTER_NAME
from models.export import ExportRequest, export_model
from models.repository.config import ModelConfig, read_config
from models.repository.layout import config_path, model_dir, model_file, model_names

DEMO_MODELS = (CLASSIFIER_NAME, SEGMENTER_NAME)
JPEG_QUALITY = 90


def ensure_demo_repo(repo: Path, log: Callable[[str], None] = print) -> Path:
    """``repo`` with the demo models, built by ``attnserve demo build`` if they are absent."""
    if set(DEMO_MODELS) <= set(model_names(repo)):
        return repo
    log(f"# no demo models in {repo}: running `attnserve demo build` (minutes, not measured)")
    command = [sys.executable, "-m", "service.cli", "demo", "build", "--repo", str(repo)]
    subprocess.run(command, check=True, stdout=sys.stderr)
    return repo


def build_work_repo(
    demo_repo: Path, work: Path, target: str, input_size: int, demo_models: tuple[str, ...]
) -> Path:
    """A fresh repository in ``work``: copies of ``demo_models`` and ``target``.

    ``target`` already in the demo repository is copied like the others; otherwise it names a
    zoo architecture, exported here at ``input_size`` with random weights (timing does not
    depend on the weights)."""
    repo = work / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    available = set(model_names(demo_repo))
    for name in {*demo_models, target} & available:
        shutil.copytree(model_dir(demo_repo, name), model_dir(repo, name), dirs_exist_ok=True)
    if target not in available:
        export_model(ExportRequest(target, repo, input_size=(input_size, input_size)))
    return repo


def model_config(repo: Path, name: str) -> ModelConfig:
    return read_config(config_path(repo, name))


def latest_model_file(repo: Path, name: str) -> Path:
    """The file of the newest version of ``name``, where the repository layout puts it."""
    config = model_config(repo, name)
    version = config.latest_version
    if version is None:
        raise ValueError(f"model {name!r} of {repo} has no version")
    return model_file(repo, name, version, config.versions[version].file)


def synthetic_jpeg(height: int, width: int, seed: int = 0) -> bytes:
    """A photo-like JPEG: smooth colour gradients, a few blobs and sensor noise, so it decodes
    like a real photo of that size rather than like a flat (trivially compressible) image."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        fy, fx, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 6.28)
        image[:, :, channel] = 127 + 80 * np.sin(fy * ys / height * 6.28 + fx * xs / width + phase)
    for _ in range(6):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(8, width / 4)
        inside = (ys - cy) ** 2 + (xs - cx) ** 2 < radius**2
        image[inside] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 6, image.shape)
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def shapes_jpeg(size: int = 64, seed: int = 0) -> bytes:
    """One demo-distribution image (a coloured shape on texture) as JPEG, for the demo models."""
    from models.demo.shapes import generate_batch

    images, _, _ = generate_batch(seed, 1, size)
    buffer = io.BytesIO()
    Image.fromarray(images[0]).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def request_image(config: ModelConfig) -> bytes:
    """The JPEG a model gets in the benchmark: demo-like at the demo size, photo-like otherwise."""
    height, width = config.input.height, config.input.width
    if config.name in DEMO_MODELS:
        return shapes_jpeg(height)
    return synthetic_jpeg(height, width)
