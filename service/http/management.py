"""Load, unload and reload models at run time. Mounted only when an API key is configured,
and every call needs ``Authorization: Bearer <key>`` (compared in constant time)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service import repository
from service.auth import require_api_key
from service.errors import NotFound
from service.http.health import ModelStatus, model_statuses
from service.state import get_state

router = APIRouter(prefix="/models", tags=["management"], dependencies=[Depends(require_api_key)])


def status_of(request: Request, name: str) -> ModelStatus:
    for status in model_statuses(get_state(request)):
        if status.name == name:
            return status
    raise NotFound(f"model {name!r} is not loaded")


@router.post("/{name}/load", response_model=ModelStatus)
async def load(request: Request, name: str) -> ModelStatus:
    """Load (or reload) every version of a model folder of the repository. In-flight
    requests finish on the old versions, which drain once the new ones are ready."""
    entry = await repository.load_model(get_state(request).store, name)
    return status_of(request, entry.name)


@router.post("/{name}/reload", response_model=ModelStatus)
async def reload(request: Request, name: str) -> ModelStatus:
    return await load(request, name)


@router.post("/{name}/unload")
async def unload(request: Request, name: str) -> dict[str, str]:
    """Stop serving a model: queued requests are answered first, within the drain budget
    (``ATTNSERVE_DRAIN_TIMEOUT_S``); those still queued after it get 503, later ones 404."""
    await repository.unload_model(get_state(request).store, name)
    return {"status": "unloaded", "model": name}
