"""Triton's ``model_repository`` extension over HTTP v2: the index of the repository, and
loading and unloading models (what ``tritonclient.http``'s ``get_model_repository_index``,
``load_model`` and ``unload_model`` call). Mounted with the management endpoints, only when an
API key is configured, and behind the same key; the work is :mod:`service.repository`'s.

tritonclient never names a repository in these paths, and attnserve serves one, so Triton's
``/v2/repository/{repository}/...`` forms are not served.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service import repository
from service.auth import require_api_key
from service.errors import BadRequest
from service.protocols.body import read_capped
from service.repository import IndexEntry
from service.state import get_state

#: these bodies hold a flag or two; anything larger is not one of them
MAX_BODY_BYTES = 64 * 1024

router = APIRouter(
    prefix="/v2/repository",
    tags=["model repository (v2)"],
    dependencies=[Depends(require_api_key)],
)


class IndexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ready: bool = Field(False, strict=True, description="list only the READY model versions")


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="unload: `unload_dependents` (accepted, no effect)"
    )


Body = TypeVar("Body", bound=BaseModel)


def documented(body: type[BaseModel]) -> dict[str, Any]:
    """The optional JSON body in the OpenAPI document (the route reads it itself, capped)."""
    schema = {"application/json": {"schema": body.model_json_schema()}}
    return {"openapi_extra": {"requestBody": {"required": False, "content": schema}},
            "responses": {401: {"description": "no or wrong API key"},
                          400: {"description": "malformed body or unknown parameter"}}}  # fmt: skip


async def read_body(request: Request, body: type[Body]) -> Body:
    """The body as ``body``; an empty one is the defaults, as tritonclient sends it."""
    data = await read_capped(request, MAX_BODY_BYTES)
    try:
        return body.model_validate_json(data if data.strip() else b"{}")
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
        )
        raise BadRequest(f"invalid request body: {problems}") from None


@router.post("/index", response_model=list[IndexEntry], **documented(IndexRequest))
async def index(request: Request) -> list[dict[str, str]]:
    """Every model folder of the repository, loaded or not, one row per version: state READY,
    LOADING or UNAVAILABLE with the reason (``unloaded``, or why it failed to load)."""
    ready_only = (await read_body(request, IndexRequest)).ready
    return [asdict(row) for row in repository.repository_index(get_state(request).store,
                                                               ready_only)]  # fmt: skip


@router.post("/models/{name}/load", **documented(ModelRequest))
async def load(request: Request, name: str) -> Response:
    """Load (or reload) a model folder: 200 (empty, as Triton answers) once every version is
    ready; 400 with the reason when one fails to load."""
    parameters = (await read_body(request, ModelRequest)).parameters
    repository.check_parameters("load", parameters, repository.LOAD_PARAMETERS)
    repository.require_loaded(await repository.load_model(get_state(request).store, name))
    return Response()


@router.post("/models/{name}/unload", **documented(ModelRequest))
async def unload(request: Request, name: str) -> Response:
    """Stop serving a model (its queued requests are answered first, within the drain budget)."""
    parameters = (await read_body(request, ModelRequest)).parameters
    repository.check_parameters("unload", parameters, repository.UNLOAD_PARAMETERS)
    await repository.unload_model(get_state(request).store, name)
    return Response()
