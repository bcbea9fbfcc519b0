"""The repository RPCs' messages to :mod:`service.repository`'s values and back, so gRPC and
HTTP v2 answer the same index and accept the same parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

from service.protocols.grpc import inference_pb2 as pb
from service.repository import IndexEntry


def parameter_values(parameters: Mapping[str, pb.ModelRepositoryParameter]) -> dict[str, object]:
    """Each ``ModelRepositoryParameter`` as the value it holds (None when it holds none)."""
    values: dict[str, object] = {}
    for key, parameter in parameters.items():
        field = parameter.WhichOneof("parameter_choice")
        values[key] = None if field is None else getattr(parameter, field)
    return values


def index_response(rows: list[IndexEntry]) -> pb.RepositoryIndexResponse:
    return pb.RepositoryIndexResponse(
        models=[pb.RepositoryIndexResponse.ModelIndex(**asdict(row)) for row in rows]
    )
