"""Open Inference Protocol (KServe v2), so standard clients such as ``tritonclient.http`` work.

One input per request: ``FP32 [N, 3, H, W]`` already normalised for the model, or ``BYTES [N]``
of encoded images (decoded and pre-processed like /predict). Outputs: ``logits`` and
``probabilities`` ``FP32 [N, classes(, H, W)]``, for segmenters ``mask`` ``INT32 [N, H, W]`` at
the model's input size, and every attention map by name (computed only when requested).
Requests go through the same engine pipeline as /predict; the wire format is :mod:`.codec`'s
(and its tensors :mod:`.tensors`').
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from models.repository.config import ModelConfig
from service.engine.pipeline import Job, Pipeline, Target
from service.engine.result import Result
from service.errors import BadRequest, InferenceFailed, ServiceError
from service.logs import request_info
from service.protocols.body import read_capped
from service.protocols.disconnect import DisconnectWatch
from service.protocols.v2.classification import classification_counts, classify
from service.protocols.v2.codec import (
    InferRequest,
    OutputTensor,
    encode_infer_response,
    parse_infer_request,
    require_finite,
)
from service.protocols.v2.schedule import priority_of, tightest, timeout_ms_of
from service.protocols.v2.schemas import INFER_BODY, infer_responses
from service.protocols.v2.tensors import batch_size
from service.settings import Settings
from service.state import get_state

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])

SERVER = {"name": "attnserve", "version": "0.1.0",
          "extensions": ["binary_tensor_data", "classification", "schedule_policy",
                         "statistics"]}  # fmt: skip
DEFAULT_OUTPUTS = {"classification": ["logits", "probabilities"],
                   "segmentation": ["logits", "probabilities", "mask"]}  # fmt: skip


def server_info(settings: Settings) -> dict[str, Any]:
    """SERVER as this process serves it: ``model_repository`` only where its endpoints are
    mounted (an API key is set), so that the list is exactly what answers."""
    repository = ["model_repository"] if settings.api_key is not None else []
    return {**SERVER, "extensions": SERVER["extensions"] + repository}


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    return server_info(get_state(request).settings)


@router.get("/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/health/ready")
async def ready(request: Request) -> JSONResponse:
    is_ready = get_state(request).ready
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


def map_shape(config: ModelConfig, name: str) -> list[int]:
    """A map's shape as infer returns it, -1 for the batch: from the exported config; a config
    exported before map shapes were recorded knows no rank, hence ``[-1]``."""
    shape = config.map_shapes.get(name)
    return [-1] if shape is None else [-1, *shape]


def metadata(config: ModelConfig, versions: list[int]) -> dict[str, Any]:
    spatial = [config.input.height, config.input.width]
    per_class = [-1, config.num_classes] + (spatial if config.task == "segmentation" else [])
    outputs = [
        {"name": "logits", "datatype": "FP32", "shape": per_class},
        {"name": "probabilities", "datatype": "FP32", "shape": per_class},
    ]
    if config.task == "segmentation":
        outputs.append({"name": "mask", "datatype": "INT32", "shape": [-1, *spatial]})
    outputs += [{"name": name, "datatype": "FP32", "shape": map_shape(config, name)}
                for name in config.attention_maps]  # fmt: skip
    return {
        "name": config.name,
        "versions": [str(v) for v in versions],
        "platform": "pytorch_torchscript",
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [-1, 3, *spatial]},
            {"name": "image", "datatype": "BYTES", "shape": [-1]},
        ],
        "outputs": outputs,
    }


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(request: Request, name: str, version: int | None = None) -> dict:
    target = get_state(request).pipeline.target(name, version)
    return metadata(target.config, [target.version] if version else list(target.versions))


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(request: Request, name: str, version: int | None = None) -> JSONResponse:
    try:
        get_state(request).pipeline.target(name, version)
    except ServiceError as error:
        if error.status == 404:
            raise
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return JSONResponse({"name": name, "ready": True})


def requested_outputs(infer: InferRequest, config: ModelConfig) -> tuple[list[str], set[str]]:
    """Output names to return and those to return as binary data."""
    known = DEFAULT_OUTPUTS[config.task] + list(config.attention_maps)
    if infer.outputs is None:
        names = DEFAULT_OUTPUTS[config.task]
        return names, set(names) if infer.binary_data_output else set()
    names = [o.name for o in infer.outputs]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}; this model has {known}")
    binary = {o.name for o in infer.outputs if o.binary_data or infer.binary_data_output}
    return names, binary


async def run_items(pipeline: Pipeline, job: Job, infer: InferRequest) -> list[Result]:
    if len(infer.inputs) != 1:
        raise BadRequest(f"send exactly one input ('input' FP32 or 'image' BYTES), "
                         f"got {len(infer.inputs)}")  # fmt: skip
    tensor = infer.inputs[0]
    config = job.target.config
    batch_size(tensor.name, tensor.datatype, tensor.shape, pipeline.settings.max_files_per_request)
    if tensor.datatype == "BYTES":
        return list(await asyncio.gather(*(pipeline.run_image(job, bytes(d)) for d in tensor.data)))
    expected = (3, config.input.height, config.input.width)
    if tensor.datatype != "FP32" or len(tensor.shape) != 4 or tensor.shape[1:] != expected:
        raise BadRequest(f"input '{tensor.name}' must be FP32 [N, {', '.join(map(str, expected))}]"
                         f" or BYTES [N]; got {tensor.datatype} {list(tensor.shape)}")  # fmt: skip
    require_finite(tensor)
    images = torch.from_numpy(np.ascontiguousarray(tensor.data, dtype=np.float32))
    return list(await asyncio.gather(*(pipeline.run_tensor(job, image) for image in images)))


async def compute_outputs(
    pipeline: Pipeline,
    target: Target,
    infer: InferRequest,
    names: list[str],
    is_disconnected: Callable[[], Awaitable[bool]] | None,
    timeout_ms: float | None = None,
) -> list[OutputTensor]:
    """Run a validated request and collect its ``names`` outputs (every protocol's infer),
    counted in the model version's statistics from here on. ``timeout_ms`` is the protocol's
    own deadline (gRPC's); the request's ``timeout`` and ``priority`` parameters are Triton's
    schedule policy (:mod:`.schedule`)."""
    with_maps = any(n in target.config.attention_maps for n in names)
    timeout_ms = tightest(timeout_ms, timeout_ms_of(infer.parameters))
    priority = priority_of(infer.parameters)
    job = pipeline.job(target, with_maps, timeout_ms, is_disconnected, priority)
    with pipeline.counting(job):
        counts = classification_counts(infer, target.config)
        results = await run_items(pipeline, job, infer)
        outputs = [collect(n, results) for n in names]
        labels = target.config.labels
        return [classify(o, counts[o.name], labels) if o.name in counts else o for o in outputs]


def collect(name: str, results: list[Result]) -> OutputTensor:
    logits = torch.stack([r.output for r in results])
    if name == "logits":
        return OutputTensor(name, "FP32", logits.numpy())
    if name == "probabilities":
        return OutputTensor(name, "FP32", logits.softmax(dim=1).numpy())
    if name == "mask":
        return OutputTensor(name, "INT32", logits.argmax(dim=1).to(torch.int32).numpy())
    return OutputTensor(name, "FP32", torch.stack([r.maps[name] for r in results]).numpy())


INFER_ERRORS = {
    400: "malformed request, wrong input shape or datatype, non-finite values, bad priority",
    404: "unknown model or version",
    413: "body over max_upload_bytes, or an image over max_image_pixels",
    422: "invalid path parameter",
    500: "the model failed on this input",
    503: "queue full, model not ready or shutting down (see Retry-After)",
    504: "deadline passed before the input was computed",
}
INFER_DOCS: dict[str, Any] = {"openapi_extra": INFER_BODY,
                              "responses": infer_responses(INFER_ERRORS)}  # fmt: skip


@router.post("/models/{name}/infer", **INFER_DOCS)
@router.post("/models/{name}/versions/{version}/infer", **INFER_DOCS)
async def infer(request: Request, name: str, version: int | None = None) -> Response:
    state = get_state(request)
    target = state.pipeline.target(name, version)
    request_info().model = target.name
    config = target.config
    body = await read_capped(request, state.settings.max_upload_bytes)
    parsed = parse_infer_request(body, request.headers.get("inference-header-content-length"))
    names, binary = requested_outputs(parsed, config)
    async with DisconnectWatch(request) as watch:
        gone = watch.is_disconnected
        outputs = await compute_outputs(state.pipeline, target, parsed, names, gone)
    try:
        payload, headers = encode_infer_response(
            target.name, str(target.version), parsed.id, outputs, binary
        )
    except ValueError as error:
        raise InferenceFailed(
            f"{error}; request binary outputs to receive non-finite values"
        ) from None
    return Response(payload, headers=headers)
