"""The training variation (other styles, random uploads) is seeded and keeps masks true, and
the evaluation's decoding is the service's own pre-processing, pixel for pixel."""

import numpy as np
import pytest
import torch
from PIL import Image

from models.demo import styles
from models.demo.evaluate import FORMATS, SIDES, Task, evaluate_uploads, table, uploaded
from models.demo.shapes import generate_batch, generate_sample
from models.demo.train import iou_counts, mean_iou, to_input
from models.demo.uploads import Variation, as_uploaded, decode, encode, uploaded_batch
from models.repository.config import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from service.imaging import load_for_model


def test_styles_split_a_shape_into_fill_and_outline() -> None:
    rng = np.random.default_rng(1)
    region = np.zeros((40, 40), dtype=bool)
    region[5:35, 8:30] = True
    seen = set()
    for _ in range(60):
        fill, outline = styles.stroke(rng, region, radius=15.0)
        assert not (fill & outline).any() and ((fill | outline) <= region).all()
        seen.add((bool(fill.any()), bool(outline.any())))
        if outline.any():
            assert (fill | outline).sum() == region.sum() or not fill.any()
            assert outline[5, 8:30].all()  # the outline runs along the region's edge
    assert seen == {(True, False), (True, True), (False, True)}  # filled, outlined, hollow


def test_other_backgrounds_are_images_of_every_kind() -> None:
    rng = np.random.default_rng(2)
    flat = 0
    for _ in range(30):
        background = styles.background(rng, 32)
        assert background.shape == (32 * 32, 3) and background.dtype == np.float32
        assert background.min() >= 0.0 and background.max() <= 255.0
        flat += int(np.ptp(background, axis=0).max() == 0)
    assert 0 < flat < 30


def test_varied_samples_are_seeded_and_differ_from_the_usual_style() -> None:
    first = generate_batch(5, 20, 64, 3, varied=True)
    again = generate_batch(5, 20, 64, 3, varied=True)
    usual = generate_batch(5, 20, 64, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], usual[0])
    assert first[2].max() <= 5 and all(mask.any() for mask in first[2])


def test_an_upload_keeps_image_and_mask_aligned_and_the_label_visible() -> None:
    rng = np.random.default_rng(3)
    variation = Variation(jpeg_share=0.0, blur_share=0.0, brightness=(1, 1), contrast=(1, 1),
                          saturation=(1, 1), gamma=(1, 1))  # fmt: skip
    for _ in range(20):
        sample = generate_sample(rng, 96, 1)
        image, mask = as_uploaded(rng, sample.image, sample.mask, 64, sample.label + 1, variation)
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, sample.label + 1}
        assert (mask == sample.label + 1).sum() >= 0.5 * (sample.mask == sample.label + 1).sum() * (
            64 / 96
        ) ** 2
        # without colour changes or JPEG, the shape's pixels stay far from the background's
        inside, outside = image[mask > 0].mean(0), image[mask == 0].mean(0)
        assert np.linalg.norm(inside - outside) > 30


def test_uploaded_batch_is_seeded() -> None:
    first, again = uploaded_batch(7, 6, 64, 3), uploaded_batch(7, 6, 64, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (6, 64, 64, 3) and first[2].shape == (6, 64, 64)


@pytest.mark.parametrize(("side", "quality"), [(48, None), (256, 75), (128, 90), (64, 95)])
def test_decoding_is_the_services_preprocessing(side: int, quality: int | None) -> None:
    images, _, _ = generate_batch(9, 2, side)
    spec = InputSpec(height=64, width=64)
    for image in images:
        data = encode(Image.fromarray(image), quality)
        served, _ = load_for_model(data, spec, max_pixels=10**8)
        ours = to_input(decode(data, 64)[None], spec.mean, spec.std)[0]
        assert torch.equal(served, ours)


def test_iou_counts_match_the_definition() -> None:
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randint(0, 4, (3, 16, 16), generator=generator)
    truth = torch.randint(0, 3, (3, 16, 16), generator=generator)
    intersection, union = iou_counts(predicted, truth, 4)
    for cls in range(4):
        assert int(intersection[cls]) == int(((predicted == cls) & (truth == cls)).sum())
        assert int(union[cls]) == int(((predicted == cls) | (truth == cls)).sum())
    assert mean_iou(truth, truth, 4) == 1.0


class Constant(torch.nn.Module):
    """Always the same class (0: background, for masks), at the input's size."""

    def __init__(self, classes: int, dense: bool) -> None:
        super().__init__()
        self.classes, self.dense = classes, dense

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (len(x), self.classes, *x.shape[2:]) if self.dense else (len(x), self.classes)
        logits = torch.zeros(shape)
        logits[:, 0] = 1.0
        return logits


def test_evaluation_fills_every_cell_of_the_table() -> None:
    def normalise(images: np.ndarray) -> torch.Tensor:
        return to_input(images, IMAGENET_MEAN, IMAGENET_STD)

    task = Task("miou", 6, 3, 64, normalise)
    metrics = evaluate_uploads(Constant(6, dense=True), task, seed=1, count=4)
    assert len(metrics) == 2 + len(SIDES) * len(FORMATS)
    assert 0.0 < metrics["miou.worst"] <= metrics["miou"] < 1.0  # background alone is right
    lines = table(metrics, "miou")
    assert lines[0].split() == ["format", *(f"{side}px" for side in SIDES)]
    assert [line.split()[0] for line in lines[1:]] == [name for name, _ in FORMATS]

    accuracy = evaluate_uploads(Constant(5, dense=False), Task("accuracy", 5, 1, 64, normalise),
                                seed=1, count=50, sides=(48,))  # fmt: skip
    images, labels, _ = generate_batch(1 + 48, 50, 48)
    assert accuracy["accuracy.png.48px"] == pytest.approx(float((labels == 0).mean()))
    assert uploaded(images, 75, 64).shape == (50, 64, 64, 3)
