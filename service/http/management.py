"""Load, unload and reload models at run time. Mounted only when an API key is configured,
and every call needs ``Authorization: Bearer <key>`` (compared in constant time)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request

from models.repository.config import check_model_name
from models.repository.layout import model_dir
from service.errors import InvalidParameter, NotFound, Unauthorized
from service.http.health import ModelStatus, model_statuses
from service.state import get_state


def require_api_key(request: Request) -> None:
    key = get_state(request).settings.api_key
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if (
        key is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(token.strip().encode(), key.get_secret_value().encode())
    ):
        raise Unauthorized("management needs 'Authorization: Bearer <api key>'")


router = APIRouter(prefix="/models", tags=["management"], dependencies=[Depends(require_api_key)])


def valid_name(name: str) -> str:
    try:
        return check_model_name(name)
    except ValueError as error:
        raise InvalidParameter(str(error)) from None


def status_of(request: Request, name: str) -> ModelStatus:
    for status in model_statuses(get_state(request)):
        if status.name == name:
            return status
    raise NotFound(f"model {name!r} is not loaded")


@router.post("/{name}/load", response_model=ModelStatus)
async def load(request: Request, name: str) -> ModelStatus:
    """Load (or reload) every version of a model folder of the repository. In-flight
    requests finish on the old versions, which drain once the new ones are ready."""
    name = valid_name(name)
    store = get_state(request).store
    if not model_dir(store.repo, name).is_dir():
        raise NotFound(f"no folder {name!r} in the model repository")
    await store.load_model(name)
    return status_of(request, name)


@router.post("/{name}/reload", response_model=ModelStatus)
async def reload(request: Request, name: str) -> ModelStatus:
    return await load(request, name)


@router.post("/{name}/unload")
async def unload(request: Request, name: str) -> dict[str, str]:
    """Stop serving a model: queued requests are answered first, within the drain budget
    (``ATTNSERVE_DRAIN_TIMEOUT_S``); those still queued after it get 503, later ones 404."""
    await get_state(request).store.unload_model(valid_name(name))
    return {"status": "unloaded", "model": name}
