"""Loading and unloading models by name at run time, validated once for every protocol: the
HTTP management endpoints and the gRPC repository RPCs both call these."""

from __future__ import annotations

from models.repository.config import check_model_name
from models.repository.layout import model_dir
from service.engine.store import ModelStore
from service.errors import InvalidParameter, NotFound


def valid_name(name: str) -> str:
    try:
        return check_model_name(name)
    except ValueError as error:
        raise InvalidParameter(str(error)) from None


async def load_model(store: ModelStore, name: str) -> str:
    """(Re)load every version of a model folder; returns the validated name."""
    name = valid_name(name)
    if not model_dir(store.repo, name).is_dir():
        raise NotFound(f"no folder {name!r} in the model repository")
    await store.load_model(name)
    return name


async def unload_model(store: ModelStore, name: str) -> None:
    await store.unload_model(valid_name(name))
