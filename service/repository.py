"""The model repository at run time, validated once for every protocol: loading and unloading
models by name, and the index of its folders (Triton's ``model_repository`` extension). The
HTTP management endpoints, the HTTP v2 repository endpoints and the gRPC repository RPCs all
call these."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from models.repository.config import check_model_name
from models.repository.layout import model_dir, model_folders
from service.engine.store import LoadedVersion, ModelEntry, ModelStore
from service.errors import BadRequest, InvalidParameter, NotFound

#: Triton's index states; a version being retired (``unloaded``) is UNAVAILABLE already
INDEX_STATES = {"ready": "READY", "loading": "LOADING", "failed": "UNAVAILABLE",
                "unloaded": "UNAVAILABLE"}  # fmt: skip
#: Triton's load parameters are overrides (``config``, ``file:...``): see check_parameters
LOAD_PARAMETERS: dict[str, type] = {}
#: Triton's unload parameter: no attnserve model depends on another, so it changes nothing
UNLOAD_PARAMETERS: dict[str, type] = {"unload_dependents": bool}


@dataclass(frozen=True)
class IndexEntry:
    """One row of the repository index: a model version, or a model folder with none loaded
    (``version`` empty)."""

    name: str
    version: str
    state: str
    reason: str


def valid_name(name: str) -> str:
    try:
        return check_model_name(name)
    except ValueError as error:
        raise InvalidParameter(str(error)) from None


async def load_model(store: ModelStore, name: str) -> ModelEntry:
    """(Re)load every version of a model folder; returns what the store now holds for it,
    whether its versions loaded or not (see :func:`require_loaded`)."""
    name = valid_name(name)
    if not model_dir(store.repo, name).is_dir():
        raise NotFound(f"no folder {name!r} in the model repository")
    return await store.load_model(name)


def require_loaded(entry: ModelEntry) -> None:
    """Triton's rule for a load: it fails, with the reason, unless every version loaded. A
    broken folder is the caller's to fix, hence a 400 rather than a server error."""
    reasons = [entry.error] if entry.error else []
    reasons += [f"version {v.version}: {v.error}" for v in sorted_versions(entry)
                if v.state == "failed"]  # fmt: skip
    if reasons:
        raise BadRequest(f"failed to load model {entry.name!r}: {'; '.join(reasons)}")


async def unload_model(store: ModelStore, name: str) -> None:
    await store.unload_model(valid_name(name))


def check_parameters(
    call: str, parameters: Mapping[str, object], accepted: Mapping[str, type]
) -> None:
    """Refuse parameters a call does not know or of the wrong type: Triton's load overrides
    (``config``, ``file:...``) would replace what export wrote and checked, so none is
    accepted rather than silently ignored."""
    unknown = sorted(set(parameters) - set(accepted))
    if unknown:
        known = ", ".join(accepted) or "none"
        raise BadRequest(f"{call} does not take parameter(s) {unknown} (accepted: {known}); "
                         "attnserve loads models only as exported into the repository")  # fmt: skip
    for key, kind in accepted.items():
        if key in parameters and type(parameters[key]) is not kind:
            raise BadRequest(f"{call} parameter {key!r} must be a {kind.__name__}, "
                             f"got {parameters[key]!r}")  # fmt: skip


def sorted_versions(entry: ModelEntry) -> list[LoadedVersion]:
    return sorted(entry.versions.values(), key=lambda v: v.version)


def entry_rows(entry: ModelEntry) -> list[IndexEntry]:
    if not entry.versions:  # a config that does not parse, or no version folder
        return [IndexEntry(entry.name, "", "UNAVAILABLE", entry.error or "no version loaded")]
    return [IndexEntry(entry.name, str(v.version), INDEX_STATES[v.state],
                       "" if v.state == "ready" else v.error or v.state)
            for v in sorted_versions(entry)]  # fmt: skip


def repository_index(store: ModelStore, ready_only: bool = False) -> list[IndexEntry]:
    """Every model folder of the repository, loaded or not, and every model still served whose
    folder has gone, by name then version; ``ready_only``: the READY rows alone."""
    names = sorted({*model_folders(store.repo), *store.models})
    pending = "LOADING" if not store.loaded else "UNAVAILABLE"
    rows: list[IndexEntry] = []
    for name in names:
        entry = store.models.get(name)
        if entry is None:
            reason = "unloaded" if store.loaded else "waiting for the initial load"
            rows.append(IndexEntry(name, "", pending, reason))
        else:
            rows += entry_rows(entry)
    return [row for row in rows if row.state == "READY" or not ready_only]
