"""Uploaded bytes -> the model's input tensor: check, decode, orient, convert, resize, normalise.

Everything a client can send goes through here, so every failure becomes a
:class:`~service.errors.ServiceError` a user can act on: 400 for bytes that are not a (whole)
image, 413 for an image over the pixel limit, 415 for a declared type we do not decode.

Decoding runs in a thread pool, so nothing here changes global state per call; the one global
Pillow setting we touch (its decompression-bomb threshold) is only ever raised, once, to our
own limit (see :func:`_allow_pillow_up_to`). ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left False,
so a truncated upload fails instead of decoding with a grey band.

Pre-processing reproduces ``models.demo.train.to_input`` exactly for an RGB image that is already
the model's size: uint8 RGB -> float32 in [0, 1] -> ``(x - mean) / std``, channels first.
"""

from __future__ import annotations

import io
import threading

import numpy as np
import torch

# Importing the plugins registers exactly the formats we accept, before any request arrives, so
# concurrent first requests never race through Pillow's lazy plugin loading.
from PIL import (
    BmpImagePlugin,  # noqa: F401
    ExifTags,
    GifImagePlugin,  # noqa: F401
    Image,
    ImageOps,
    JpegImagePlugin,  # noqa: F401
    PngImagePlugin,  # noqa: F401
    TiffImagePlugin,  # noqa: F401
    WebPImagePlugin,  # noqa: F401
)

from models.repository.config import InputSpec
from service.errors import InvalidImage, PayloadTooLarge, ServiceError, UnsupportedMediaType

SUPPORTED_CONTENT_TYPES: frozenset[str] = frozenset(
    {"image/jpeg", "image/png", "image/webp", "image/bmp", "image/gif", "image/tiff"}
)
# Non-standard names that real clients send for the same formats.
_CONTENT_TYPE_ALIASES: dict[str, str] = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/x-ms-bmp": "image/bmp",
    "image/x-bmp": "image/bmp",
}
# Pillow's format names, tried in this order (most common first).
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_FORMATS_TEXT = ", ".join(SUPPORTED_FORMATS)

# Transparent pixels become what a browser shows behind them: white. (``convert("RGB")`` would
# keep whatever colour happens to be stored under alpha 0, often black or garbage.)
BACKGROUND_RGB: tuple[int, int, int] = (255, 255, 255)
_WIDE_GRAY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
# Orientations 5-8 turn the image by a quarter: its width and height swap.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
# Pillow's reduce-then-resample shortcut; at 3 it is indistinguishable from a full resample.
RESIZE_REDUCING_GAP = 3.0

_pillow_limit_lock = threading.Lock()


def check_content_type(content_type: str | None) -> None:
    """Refuse (415) a declared type we do not decode, before reading the body.

    Parameters (``; charset=...``) and case are ignored. The bytes are still identified by
    their content later, so a mislabelled but supported image is decoded by what it is.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    media_type = _CONTENT_TYPE_ALIASES.get(media_type, media_type)
    if media_type not in SUPPORTED_CONTENT_TYPES:
        declared = repr(content_type) if content_type else "no content type"
        raise UnsupportedMediaType(
            f"unsupported media type {declared}: send one of "
            f"{', '.join(sorted(SUPPORTED_CONTENT_TYPES))}"
        )


class Probed:
    """An upload whose header was read once: Pillow opens an image without decoding it, so
    admission sizes it from this (:func:`service.engine.memory.image_bytes`) and the decoder
    goes on from the same opened image instead of parsing the header again.

    A header that could not be read, or that declares more than the pixel limit, is kept as
    the error the decoder raises in its turn, so a request is refused for it at the same point
    (and after the same admission checks) as if the decoder had read the header itself.
    """

    def __init__(
        self,
        nbytes: int,
        max_pixels: int,
        image: Image.Image | None,
        error: ServiceError | None = None,
        size: tuple[int, int] = (0, 0),
    ) -> None:
        self.nbytes = nbytes  # of the upload
        self.max_pixels = max_pixels
        self.size = image.size if image is not None else size  # (width, height); 0 unread
        self.mode = image.mode if image is not None else ""
        self.error = error
        self._image = image

    @property
    def pixels(self) -> int:
        return self.size[0] * self.size[1]

    def take(self) -> Image.Image:
        """The opened image, for the one decode: raises the header's error, and forgets the
        image, so that its decoded pixels live no longer than the decoder keeps them."""
        if self.error is not None:
            raise self.error
        image, self._image = self._image, None
        if image is None:
            raise RuntimeError("a probed image is decoded once")
        return image


def probe(data: bytes, *, max_pixels: int) -> Probed:
    """Read the header of ``data`` (identified by content, whatever the declared type said)."""
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if not data:
        error = InvalidImage(f"empty body: send the bytes of an image ({_FORMATS_TEXT})")
        return Probed(0, max_pixels, None, error)
    _allow_pillow_up_to(max_pixels)
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Exception as error:
        return Probed(len(data), max_pixels, None, _unreadable(error, max_pixels))
    width, height = image.size
    if width * height > max_pixels:
        too_large = PayloadTooLarge(
            f"image is {width}x{height} ({width * height:,} pixels), over the limit of "
            f"{max_pixels:,} pixels: send a smaller image"
        )
        return Probed(len(data), max_pixels, None, too_large, size=image.size)
    return Probed(len(data), max_pixels, image)


def decode_image(
    data: bytes, *, max_pixels: int, target_size: tuple[int, int] | None = None
) -> Image.Image:
    """Decode uploaded bytes into an upright RGB image (first frame of an animation).

    ``target_size`` is the (height, width) the image will be resized to; a large JPEG is then
    decoded at a reduced scale (never below that size), which is several times faster.
    """
    return _decode(probe(data, max_pixels=max_pixels), target_size=target_size)[0]


def preprocess(image: Image.Image, spec: InputSpec) -> torch.Tensor:
    """An image -> the model's (3, height, width) float32 input, normalised as in training.

    Bilinear resize (skipped at the right size, so training inputs pass through bit-exact),
    then one copy out of Pillow's buffer into a channels-first float array that the
    normalisation updates in place. ``mean`` and ``std`` are in the tensor's channel order,
    i.e. in BGR order for a BGR model.
    """
    image = image if image.mode == "RGB" else _to_rgb(image)
    if image.size != (spec.width, spec.height):
        image = image.resize(
            (spec.width, spec.height),
            Image.Resampling.BILINEAR,
            reducing_gap=RESIZE_REDUCING_GAP,
        )
    pixels = np.asarray(image)  # (H, W, 3) uint8, read-only view of Pillow's bytes
    if spec.color_order == "BGR":
        pixels = pixels[:, :, ::-1]
    planes = np.empty((3, spec.height, spec.width), dtype=np.float32)
    np.copyto(planes, pixels.transpose(2, 0, 1))  # the one copy: uint8 HWC -> float32 CHW
    # Same operations, in the same order and float32 precision, as models.demo.train.to_input,
    # but in numpy: torch ops this size would start an OpenMP thread team in every decode
    # thread, whose spinning threads then compete with the model's own for the cores.
    planes /= np.float32(255.0)
    planes -= np.asarray(spec.mean, dtype=np.float32).reshape(3, 1, 1)
    planes /= np.asarray(spec.std, dtype=np.float32).reshape(3, 1, 1)
    return torch.from_numpy(planes)


def load_for_model(
    data: bytes, spec: InputSpec, *, max_pixels: int
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Bytes -> (input tensor, original (height, width) after EXIF rotation)."""
    return load_probed(probe(data, max_pixels=max_pixels), spec)


def load_probed(probed: Probed, spec: InputSpec) -> tuple[torch.Tensor, tuple[int, int]]:
    """A probed upload -> (input tensor, original (height, width) after EXIF rotation).

    The original size is the upright size the client sees, not the size a JPEG was decoded
    at, so masks can be returned at the size of the image that was sent.
    """
    image, original_size = _decode(probed, target_size=(spec.height, spec.width))
    return preprocess(image, spec), original_size


def _decode(
    probed: Probed, *, target_size: tuple[int, int] | None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode, returning the image and its full-resolution upright (height, width)."""
    if target_size is not None and min(target_size) < 1:
        raise ValueError(f"target_size must be positive, got {target_size}")
    image = probed.take()
    width, height = image.size
    try:
        if target_size is not None:
            side = max(target_size)  # enough in either orientation and either axis order
            image.draft("RGB", (side, side))  # JPEG only; a no-op for other formats
        image.load()  # decodes now, so corrupt or truncated data fails here, not later
        orientation = _exif_orientation(image)
        if orientation != 1:
            ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb(image)
    except Exception as error:
        raise _unreadable(error, probed.max_pixels) from error
    original = (height, width) if orientation not in _QUARTER_TURNS else (width, height)
    return rgb, original


def _unreadable(error: Exception, max_pixels: int) -> ServiceError:
    """What a client is told when Pillow fails on its bytes, opening or decoding them."""
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return PayloadTooLarge(
            f"image over the limit of {max_pixels:,} pixels: send a smaller image ({error})"
        )
    if isinstance(error, Image.UnidentifiedImageError):
        return InvalidImage(
            f"could not identify the data as an image in a supported format ({_FORMATS_TEXT})"
        )
    # Decoders report bad data with many exception types (OSError, SyntaxError, ValueError,
    # struct.error, ...): all of them mean these bytes are not a whole image.
    return InvalidImage(f"could not decode the image (corrupt or truncated data?): {error}")


def _exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8); 1 when absent or unreadable, since a damaged EXIF block
    should not cost the client an otherwise good image."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:
        return 1
    return orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB.

    Transparency is composited over :data:`BACKGROUND_RGB`; 16-bit grey is scaled (/257),
    not clipped, so mid-grey stays mid-grey; CMYK, palette, 1-bit and grey convert as usual.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _WIDE_GRAY_MODES:
        wide = np.asarray(image).astype(np.float32)
        grey = np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.has_transparency_data:  # an alpha band, or a transparent colour / palette entry
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, BACKGROUND_RGB)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _allow_pillow_up_to(max_pixels: int) -> None:
    """Make sure Pillow's own bomb guard never refuses an image within *our* limit.

    Pillow warns above ``Image.MAX_IMAGE_PIXELS`` and refuses above twice that; a service
    configured for larger images would otherwise fail on legitimate ones. The threshold is only
    ever raised, to our limit and under a lock, so a concurrent reader sees the old or the new
    value and both are safe: our own check runs first on every image, and Pillow's guard
    stays in place (at least as strict as ours) for what ours does not see, such as TIFF tiles.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or limit >= max_pixels:
        return
    with _pillow_limit_lock:
        if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
            Image.MAX_IMAGE_PIXELS = max_pixels
