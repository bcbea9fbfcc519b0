"""Response bodies of /predict (they appear in the OpenAPI docs at /docs)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.repository.config import Task


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
