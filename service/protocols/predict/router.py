"""POST /predict: images in, classifications or masks out, with attention maps on request.

Parses the query and the body (:mod:`service.protocols.body`), runs every image through the
engine's :class:`~service.engine.pipeline.Pipeline`, and encodes each :class:`Result`
(:mod:`.encoding`) into the response schema (:mod:`.schemas`)."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import APIRouter, Query, Request

from models.repository.config import ModelConfig
from service.engine.result import Result
from service.errors import ErrorResponse, InvalidParameter, ServiceError
from service.logs import request_info
from service.protocols.body import read_images
from service.protocols.disconnect import DisconnectWatch
from service.protocols.predict.encoding import class_fractions, encode_heatmap, encode_mask, topk
from service.protocols.predict.schemas import (
    PREDICT_BODY,
    AttentionMap,
    ImageResult,
    Prediction,
    PredictResponse,
    SegmentationMask,
    Timings,
)
from service.state import get_state

router = APIRouter(tags=["inference"])

ERRORS = {
    status: {"model": ErrorResponse, "description": what}
    for status, what in {
        400: "not an image, corrupt, a malformed body, or a priority the model does not have",
        404: "unknown model or version",
        413: "body over max_upload_bytes or image over max_image_pixels",
        415: "unsupported Content-Type",
        422: "invalid parameter",
        500: "the model failed on this image",
        503: "queue full, model not ready or shutting down (see Retry-After)",
        504: "deadline passed before the image was computed",
    }.items()
}


def select_maps(attention: str | None, config: ModelConfig) -> list[str]:
    """``true``: every map of the model; a comma-separated list: those; unset/``false``: none."""
    if attention is None or attention.strip().lower() in ("", "false", "0", "no"):
        return []
    if attention.strip().lower() in ("true", "1", "yes", "all"):
        return list(config.attention_maps)
    names = [name.strip() for name in attention.split(",") if name.strip()]
    unknown = [name for name in names if name not in config.attention_maps]
    if unknown:
        raise InvalidParameter(
            f"unknown attention map(s) {unknown} for model {config.name!r}; "
            f"available: {config.attention_maps}"
        )
    return names


def build_result(
    config: ModelConfig, result: Result, top_k: int, maps: list[str], mask: bool, total_ms: float
) -> ImageResult:
    """Post-processing of one image (PNG encoding included); runs in the post-processing pool."""
    image = ImageResult(
        batch_size=result.batch_size,
        timings=Timings(
            queue_ms=result.queue_ms,
            preprocess_ms=result.preprocess_ms,
            inference_ms=result.inference_ms,
            total_ms=total_ms,
        ),
        attention={name: AttentionMap(**vars(encode_heatmap(result.maps[name]))) for name in maps},
    )
    if config.task == "classification":
        image.predictions = [Prediction(**p) for p in topk(result.output, top_k, config.labels)]
    elif mask:
        assert result.original_size is not None  # every /predict image was uploaded
        class_mask, png = encode_mask(result.output, result.original_size)
        height, width = result.original_size
        fractions = class_fractions(class_mask, config.labels)
        image.mask = SegmentationMask(
            png=png, width=width, height=height, class_fractions=fractions
        )
    return image


@router.post(
    "/predict", response_model=PredictResponse, responses=ERRORS, openapi_extra=PREDICT_BODY
)
async def predict(
    request: Request,
    model: str | None = Query(None, description="model name (default: the default model)"),
    version: int | None = Query(None, ge=1, description="version (default: newest ready)"),
    top_k: int = Query(5, ge=1, le=1000, description="classification: labels returned"),
    attention: str | None = Query(
        None, description="'true' for every map of the model, or a comma-separated list of names"
    ),
    mask: Literal["png", "none"] = Query("png", description="segmentation: mask encoding"),
    timeout_ms: float | None = Query(None, gt=0, description="may only shorten the deadline"),
    priority: int = Query(
        0, ge=0, description="queue level: 1 the highest, 0 the model's default_priority_level"
    ),
) -> PredictResponse:
    """Raw image body (image/jpeg, png, webp, bmp, gif, tiff) or multipart/form-data with one
    or more ``file`` parts; several images are batched and give several results in order."""
    started = time.perf_counter()
    state = get_state(request)
    pipeline = state.pipeline
    target = pipeline.target(model, version)
    request_info().model = target.name
    config = target.config
    maps = select_maps(attention, config)
    watch = DisconnectWatch(request)
    job = pipeline.job(target, bool(maps), timeout_ms, watch.is_disconnected, priority)
    with pipeline.counting(job):  # the model version's statistics
        limits = state.settings.max_upload_bytes, state.settings.max_files_per_request
        images = await read_images(request, *limits)
        async with watch:  # until the response is built: encoding may wait too
            outcomes = await asyncio.gather(
                *(pipeline.run_image(job, data) for data in images), return_exceptions=True
            )
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, ServiceError):
                    if len(outcomes) > 1:
                        outcome.message = f"image {index + 1} of {len(outcomes)}: {outcome.message}"
                    raise outcome
                if isinstance(outcome, BaseException):
                    raise outcome
            loop = asyncio.get_running_loop()
            total_ms = (time.perf_counter() - started) * 1000

            async def encode(outcome: Result) -> ImageResult:
                async with pipeline.encoding_mask(job, outcome):
                    return await loop.run_in_executor(
                        state.postprocess_pool,
                        build_result,
                        config,
                        outcome,
                        top_k,
                        maps,
                        mask == "png",
                        total_ms,
                    )

            results = await asyncio.gather(*(encode(o) for o in outcomes))
    return PredictResponse(model=target.name, version=target.version, task=config.task,
                           results=list(results))  # fmt: skip
