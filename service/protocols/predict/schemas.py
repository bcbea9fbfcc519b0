"""What OpenAPI says about /predict (at /docs): its request body and its response bodies.

The handler reads its body itself (:mod:`service.protocols.body`), so FastAPI cannot infer the
request body: :data:`PREDICT_BODY` declares it (``openapi_extra``), so that /docs "Try it out"
can send an image and generated clients get a body parameter, without changing what the
handler accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.repository.config import Task
from service.imaging import SUPPORTED_CONTENT_TYPES

BINARY = {"type": "string", "format": "binary"}
COMMONEST = ("image/jpeg", "image/png")
#: The commonest types first: /docs offers the first one by default.
IMAGE_TYPES = sorted(SUPPORTED_CONTENT_TYPES, key=lambda t: (t not in COMMONEST, t))

PREDICT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "one raw image, or a multipart form of one or more `file` parts (batched, "
        "one result each, in order); application/octet-stream is identified by its content",
        "content": {
            **{media_type: {"schema": BINARY} for media_type in IMAGE_TYPES},
            "application/octet-stream": {"schema": BINARY},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "array", "items": BINARY, "minItems": 1}},
                }
            },
        },
    }
}


class Prediction(BaseModel):
    index: int
    label: str
    score: float = Field(description="softmax probability")


class AttentionMap(BaseModel):
    png: str = Field(description="base64 8-bit grayscale PNG; value = min + pixel/255*(max-min)")
    shape: list[int] = Field(description="the map's own shape, without the batch dimension")
    min: float
    max: float


class SegmentationMask(BaseModel):
    png: str = Field(description="base64 PNG of class indices at the input image's size")
    width: int
    height: int
    class_fractions: dict[str, float] = Field(description="fraction of pixels per label")


class Timings(BaseModel):
    queue_ms: float
    preprocess_ms: float
    inference_ms: float
    total_ms: float


class ImageResult(BaseModel):
    predictions: list[Prediction] | None = Field(default=None, description="classification")
    mask: SegmentationMask | None = Field(default=None, description="segmentation")
    attention: dict[str, AttentionMap] = Field(default_factory=dict)
    batch_size: int = Field(description="size of the batch this image ran in")
    timings: Timings


class PredictResponse(BaseModel):
    model: str
    version: int
    task: Task
    results: list[ImageResult] = Field(description="one per image, in upload order")
