"""Triton's ``statistics`` extension over HTTP v2: ``GET /v2/models[/{name}[/versions/{v}]]/stats``.

The JSON is Triton's (``tritonclient.http``'s ``get_inference_statistics`` reads it), and its
field names are the proto's ``ModelStatisticsResponse``'s, so gRPC's ModelStatistics parses the
same dict (:func:`statistics_response`). What each count means is
:mod:`service.engine.statistics`' docstring.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel

from service.engine.pipeline import Pipeline
from service.engine.statistics import VersionStatistics
from service.protocols.v2.schemas import V2Error
from service.state import get_state

router = APIRouter(prefix="/v2", tags=["open inference protocol v2"])


class StatisticDuration(BaseModel):
    count: int
    ns: int


class InferStatistics(BaseModel):
    success: StatisticDuration
    fail: StatisticDuration
    queue: StatisticDuration
    compute_input: StatisticDuration
    compute_infer: StatisticDuration
    compute_output: StatisticDuration
    cache_hit: StatisticDuration
    cache_miss: StatisticDuration


class InferBatchStatistics(BaseModel):
    batch_size: int
    compute_input: StatisticDuration
    compute_infer: StatisticDuration
    compute_output: StatisticDuration


class ModelStatistics(BaseModel):
    name: str
    version: str
    last_inference: int
    inference_count: int
    execution_count: int
    inference_stats: InferStatistics
    batch_stats: list[InferBatchStatistics]


class ModelStatisticsResponse(BaseModel):
    """What these routes answer (the OpenAPI document's schema of it)."""

    model_stats: list[ModelStatistics]


STATS_DOCS: dict[str, Any] = {
    "response_model": ModelStatisticsResponse,
    "responses": {
        404: {"model": V2Error, "description": "unknown model or version"},
        503: {
            "model": V2Error,
            "description": "models still loading, or none of its versions ready",
        },
    },
}


def model_statistics(name: str, version: int, stats: VersionStatistics) -> dict[str, Any]:
    """One version's entry of ``model_stats``, in Triton's shape."""
    return {
        "name": name,
        "version": str(version),
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {
            "success": asdict(stats.success),
            "fail": asdict(stats.fail),
            "queue": asdict(stats.queue),
            **asdict(stats.compute),
            "cache_hit": asdict(stats.cache_hit),
            "cache_miss": asdict(stats.cache_miss),
        },
        "batch_stats": [
            {"batch_size": size, **asdict(batch)} for size, batch in sorted(stats.batches.items())
        ],
    }


def statistics_response(
    pipeline: Pipeline, name: str | None = None, version: int | None = None
) -> dict[str, Any]:
    """Every ready version's (``name`` None), one model's, or one version's statistics; an
    unknown model or version raises NotFound (404)."""
    found = pipeline.statistics(name, version)
    return {"model_stats": [model_statistics(*entry) for entry in found]}


@router.get("/models/stats", **STATS_DOCS)
async def all_statistics(request: Request) -> dict[str, Any]:
    return statistics_response(get_state(request).pipeline)


@router.get("/models/{name}/stats", **STATS_DOCS)
@router.get("/models/{name}/versions/{version}/stats", **STATS_DOCS)
async def statistics(request: Request, name: str, version: int | None = None) -> dict[str, Any]:
    return statistics_response(get_state(request).pipeline, name, version)
