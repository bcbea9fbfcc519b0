"""The header read once (:func:`service.imaging.probe`): admission sizes an upload from it and
the decoder goes on from the same opened image, so what each sees and raises is what it would
have found reading the bytes itself."""

from __future__ import annotations

import pytest
from PIL import Image

from models.repository.config import InputSpec
from service.errors import InvalidImage, PayloadTooLarge
from service.imaging import load_probed, preprocess, probe
from tests.service.test_imaging import encode, forged_png

SPEC = InputSpec(height=8, width=8)


def test_a_probe_reports_the_header_and_decodes_as_the_bytes_do() -> None:
    image = Image.new("L", (30, 20), 77)
    data = encode(image, "PNG")
    probed = probe(data, max_pixels=1_000)
    assert (probed.size, probed.mode, probed.pixels) == ((30, 20), "L", 600)
    assert probed.nbytes == len(data)
    tensor, original = load_probed(probed, SPEC)
    assert original == (20, 30)
    assert tensor.equal(preprocess(image.convert("RGB"), SPEC))


def test_a_probed_image_is_decoded_once_and_then_let_go() -> None:
    """The decoded pixels live no longer than the decoder keeps them: the probe, which the
    pipeline holds for the whole request, forgets its image when the decoder takes it."""
    probed = probe(encode(Image.new("RGB", (8, 8)), "PNG"), max_pixels=1_000)
    load_probed(probed, SPEC)
    with pytest.raises(RuntimeError, match="decoded once"):
        probed.take()


@pytest.mark.parametrize(
    ("data", "error", "message", "size"),
    [
        (b"", InvalidImage, "empty body", (0, 0)),
        (b"not an image", InvalidImage, "could not identify", (0, 0)),
        (forged_png(100, 11), PayloadTooLarge, r"100x11 \(1,100 pixels\)", (100, 11)),
    ],
)
def test_a_header_error_is_raised_by_the_decoder_not_the_probe(
    data: bytes, error: type[Exception], message: str, size: tuple[int, int]
) -> None:
    """Admission never refuses on the header (the pipeline's own checks come first, as before):
    the probe keeps the error, and the header's size when there is one, for the decoder."""
    probed = probe(data, max_pixels=1_000)
    assert probed.size == size and isinstance(probed.error, error)
    with pytest.raises(error, match=message):
        load_probed(probed, SPEC)
