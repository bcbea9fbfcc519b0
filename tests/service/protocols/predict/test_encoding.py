"""Model outputs -> response payloads: PNG round trips, masks at the original size, top-k."""

from __future__ import annotations

import base64
import io
import math
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from service.protocols.predict import encoding
from service.protocols.predict.encoding import (
    Heatmap,
    class_fractions,
    encode_heatmap,
    encode_mask,
    png_base64,
    topk,
)

#: what a mask may cost per returned pixel: itself (1 byte) and Pillow's PNG encoder, whose
#: buffer is 4 bytes a column (a 40,000,000 x 1 strip is all columns) ...
MASK_BYTES_PER_PIXEL = 6
#: ... and beyond that a constant: a few tiles of class scores, whatever the image's shape
MASK_FIXED_COST_BYTES = 48 * 2**20


def decode_png(text: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(text, validate=True)), formats=["PNG"])
    assert image.mode == "L"
    return np.asarray(image)


def test_png_base64_round_trip() -> None:
    array = np.arange(6 * 7, dtype=np.uint8).reshape(6, 7) * 6
    text = png_base64(array)
    assert text.isascii()
    assert np.array_equal(decode_png(text), array)


@pytest.mark.parametrize(
    "array", [np.zeros((2, 2), np.int64), np.zeros((2, 2, 3), np.uint8), np.zeros((0, 3), np.uint8)]
)
def test_png_base64_rejects_what_is_not_a_2d_uint8_image(array: np.ndarray) -> None:
    with pytest.raises(ValueError):
        png_base64(array)


def halves_logits(classes: int = 3, size: int = 4) -> torch.Tensor:
    """Class 1 wins on the left half, class 2 on the right half."""
    logits = torch.zeros(classes, size, size)
    logits[1, :, : size // 2] = 5.0
    logits[2, :, size // 2 :] = 5.0
    return logits


def test_mask_is_returned_at_the_original_size() -> None:
    mask, text = encode_mask(halves_logits(), (40, 60))
    assert mask.shape == (40, 60) and mask.dtype == np.uint8
    assert (mask[:, :29] == 1).all() and (mask[:, 31:] == 2).all()
    assert set(np.unique(mask)) == {1, 2}
    assert np.array_equal(decode_png(text), mask)


@pytest.mark.parametrize("original_size", [(37, 53), (5, 3), (16, 16)])
def test_mask_matches_bilinear_upsampling_then_argmax(original_size: tuple[int, int]) -> None:
    logits = torch.randn(5, 16, 16, generator=torch.Generator().manual_seed(0))
    reference = F.interpolate(logits[None], size=original_size, mode="bilinear")[0].argmax(0)
    mask, _ = encode_mask(logits, original_size)
    agreement = (torch.from_numpy(mask).long() == reference).float().mean()
    assert agreement >= 0.999


def test_mask_tiles_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    logits = torch.randn(4, 8, 8, generator=torch.Generator().manual_seed(1))
    whole, _ = encode_mask(logits, (50, 30))
    monkeypatch.setattr(encoding, "MASK_TILE_ELEMENTS", 4 * 8 * 7)  # tiles of 7 x 2
    tiled, _ = encode_mask(logits, (50, 30))
    assert np.array_equal(whole, tiled)
    assert class_fractions(tiled, list("abcd")) == class_fractions(whole, list("abcd"))


@pytest.mark.parametrize("original_size", [(1, 100_000), (1, 40_000_000), (100_000, 1)])
def test_mask_memory_is_bounded_by_the_pixels_it_returns(original_size: tuple[int, int]) -> None:
    """Issue 13: a 5 kB 1-bit PNG of 40,000,000 x 1 made the mask cost classes x 64 x width
    floats (57 GiB; a 100,000 x 1 strip +586 MB). Now: its mask and a few fixed-size tiles."""
    logits = torch.randn(6, 64, 64, generator=torch.Generator().manual_seed(2))
    pixels = math.prod(original_size)
    tracemalloc.start()
    try:
        mask, text = encode_mask(logits, original_size)
        fractions = class_fractions(mask, list("abcdef"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mask.shape == original_size and math.isclose(sum(fractions.values()), 1.0)
    assert text
    assert peak < MASK_BYTES_PER_PIXEL * pixels + MASK_FIXED_COST_BYTES, (peak, pixels)


def test_mask_needs_at_most_256_classes() -> None:
    assert encode_mask(torch.zeros(256, 2, 2), (2, 2))[0].max() == 0
    with pytest.raises(ValueError, match="257 classes"):
        encode_mask(torch.zeros(257, 2, 2), (2, 2))
    with pytest.raises(ValueError, match="shape"):
        encode_mask(torch.zeros(2, 2), (2, 2))


def test_class_fractions() -> None:
    mask = np.array([[1, 1, 2, 2], [1, 1, 1, 2]], dtype=np.uint8)
    fractions = class_fractions(mask, ["background", "circle", "square"])
    assert fractions == {"background": 0.0, "circle": 5 / 8, "square": 3 / 8}
    assert math.isclose(sum(fractions.values()), 1.0)
    with pytest.raises(ValueError, match="class 2"):
        class_fractions(mask, ["background", "circle"])


def recovered(heatmap: Heatmap) -> np.ndarray:
    return heatmap.min + decode_png(heatmap.png) / 255.0 * (heatmap.max - heatmap.min)


@pytest.mark.parametrize(
    ("shape", "image_shape"),
    [((5, 7), (5, 7)), ((3, 5, 7), (15, 7)), ((10,), (1, 10)), ((2, 3), (2, 3)), ((), (1, 1))],
)
def test_heatmap_round_trip(shape: tuple[int, ...], image_shape: tuple[int, int]) -> None:
    values = torch.randn(shape, generator=torch.Generator().manual_seed(2)) * 3 + 1
    heatmap = encode_heatmap(values)
    assert heatmap.shape == list(shape)
    assert decode_png(heatmap.png).shape == image_shape
    assert heatmap.min == pytest.approx(float(values.min()))
    assert heatmap.max == pytest.approx(float(values.max()))
    error = np.abs(recovered(heatmap) - values.double().reshape(image_shape).numpy()).max()
    assert error <= (heatmap.max - heatmap.min) / 255 + 1e-9
    if values.numel() > 1:
        assert decode_png(heatmap.png).min() == 0 and decode_png(heatmap.png).max() == 255


def test_constant_heatmap_is_all_zeros() -> None:
    heatmap = encode_heatmap(torch.full((4, 6), 0.25))
    assert heatmap.min == heatmap.max == 0.25
    assert (decode_png(heatmap.png) == 0).all()
    assert np.allclose(recovered(heatmap), 0.25)


def test_heatmap_rejects_non_finite_and_empty_maps() -> None:
    with pytest.raises(ValueError, match="NaN"):
        encode_heatmap(torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(ValueError, match="empty"):
        encode_heatmap(torch.zeros(0, 3))


def test_topk_order_and_scores() -> None:
    logits = torch.tensor([1.0, 3.0, 2.0, 0.0])
    labels = ["a", "b", "c", "d"]
    best = topk(logits, 2, labels)
    assert [(entry["index"], entry["label"]) for entry in best] == [(1, "b"), (2, "c")]
    probabilities = torch.softmax(logits.double(), 0)
    assert [entry["score"] for entry in best] == pytest.approx(probabilities[[1, 2]].tolist())
    assert sum(entry["score"] for entry in best) <= 1.0
    everything = topk(logits, 4, labels)
    assert math.isclose(sum(entry["score"] for entry in everything), 1.0)


def test_topk_clamps_k_and_keeps_ties_in_index_order() -> None:
    labels = ["a", "b", "c"]
    assert len(topk(torch.zeros(3), 0, labels)) == 1
    assert len(topk(torch.zeros(3), 99, labels)) == 3
    assert [entry["index"] for entry in topk(torch.zeros(3), 3, labels)] == [0, 1, 2]
    with pytest.raises(ValueError, match="labels"):
        topk(torch.zeros(3), 1, ["a", "b"])
