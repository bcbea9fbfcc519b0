"""Liveness, readiness, model status and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from models.repository.config import ModelConfig
from service.state import AppState, get_state

router = APIRouter(tags=["health"])


class VersionStatus(BaseModel):
    version: int
    state: str = Field(description="loading | ready | failed | unloaded")
    error: str | None = None


class ModelStatus(BaseModel):
    name: str
    ready: bool
    error: str | None = None
    versions: list[VersionStatus]
    config: ModelConfig | None = None


class ModelsResponse(BaseModel):
    default_model: str | None
    models: list[ModelStatus]


def model_statuses(state: AppState) -> list[ModelStatus]:
    return [
        ModelStatus(
            name=entry.name,
            ready=entry.ready,
            error=entry.error,
            config=entry.config,
            versions=[
                VersionStatus(version=v.version, state=v.state, error=v.error)
                for v in sorted(entry.versions.values(), key=lambda v: v.version)
            ],
        )
        for entry in sorted(state.store.models.values(), key=lambda e: e.name)
    ]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (says nothing about models)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "starting, a model not ready, or draining"}})
async def readyz(request: Request) -> JSONResponse:
    """200 only when every model is loaded and warm and the service is not shutting down."""
    state = get_state(request)
    if state.draining:
        status = "draining"
    elif not state.store.loaded:
        status = "loading"
    else:
        status = "ready" if state.ready else "degraded"
    body = {
        "status": status,
        "models": {entry.name: entry.ready for entry in state.store.models.values()},
        "errors": {e.name: e.error for e in state.store.models.values() if e.error},
    }
    if state.store.load_error:
        body["errors"]["repository"] = state.store.load_error
    return JSONResponse(body, status_code=200 if state.ready else 503)


@router.get("/models", response_model=ModelsResponse)
async def models(request: Request) -> ModelsResponse:
    """Every model found in the repository: versions, readiness, errors and config."""
    state = get_state(request)
    return ModelsResponse(default_model=state.store.default_model, models=model_statuses(state))


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(get_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)
