"""The ``inference.GRPCInferenceService`` RPCs, on the same engine, limits and metrics as HTTP.

Each RPC runs inside :func:`~service.protocols.grpc.calls.rpc` (request id, access log, status
codes, metrics). Validation and results are the HTTP v2 protocol's own functions.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format

from service import repository
from service.auth import check_api_key
from service.errors import BadRequest, DeadlineExceeded, ServiceError
from service.logs import request_info
from service.protocols.grpc import inference_pb2 as pb
from service.protocols.grpc import inference_pb2_grpc as pb_grpc
from service.protocols.grpc.calls import rpc
from service.protocols.grpc.codec import (
    encode_model_infer,
    model_metadata,
    parse_model_infer,
    server_metadata,
)
from service.protocols.grpc.repository import index_response, parameter_values
from service.protocols.v2.router import compute_outputs, metadata, requested_outputs, server_info
from service.protocols.v2.statistics import statistics_response
from service.state import AppState


def version_of(text: str) -> int | None:
    """A model version string: empty for the newest ready version, else a number."""
    if not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(f"model version must be a number (or empty for the newest), got {text!r}")
    return int(text)


def model_name(text: str) -> str:
    if not text:
        raise BadRequest("the request names no model; set the model name")
    return text


def timeout_ms(context: grpc.aio.ServicerContext) -> float | None:
    """The gRPC deadline's remaining milliseconds; Triton's ``timeout`` parameter tightens it
    and the configured ``timeout_ms`` caps both (:func:`compute_outputs`, :meth:`Pipeline.job`).
    """
    remaining_s = context.time_remaining()
    if remaining_s is None:
        return None
    if remaining_s <= 0:
        raise DeadlineExceeded("the request's deadline passed before it could be queued")
    return remaining_s * 1000


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, state: AppState) -> None:
        self.state = state

    @rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Any) -> Any:
        return pb.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Any) -> Any:
        return pb.ServerReadyResponse(ready=self.state.ready)

    @rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Any) -> Any:
        """Not ready (rather than an error) for an unknown model too, as ``is_model_ready``
        over HTTP reports it."""
        name, version = model_name(request.name), version_of(request.version)
        try:
            self.state.pipeline.target(name, version)
        except ServiceError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    @rpc
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Any) -> Any:
        return server_metadata(server_info(self.state.settings))

    @rpc
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Any) -> Any:
        version = version_of(request.version)
        target = self.state.pipeline.target(model_name(request.name), version)
        return model_metadata(
            metadata(target.config, [target.version] if version else list(target.versions))
        )

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Any) -> Any:
        pipeline = self.state.pipeline
        target = pipeline.target(model_name(request.model_name), version_of(request.model_version))
        request_info().model = target.name
        parsed = parse_model_infer(request)
        names, _ = requested_outputs(parsed, target.config)

        async def cancelled() -> bool:
            return context.cancelled()

        outputs = await compute_outputs(
            pipeline, target, parsed, names, cancelled, timeout_ms(context)
        )
        return encode_model_infer(target.name, str(target.version), parsed.id, outputs)

    @rpc
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Any) -> Any:
        """Triton's statistics extension: every model's when the request names none."""
        if not request.name and request.version:
            raise BadRequest("a model version was given without a model name")
        stats = statistics_response(
            self.state.pipeline, request.name or None, version_of(request.version)
        )
        return json_format.ParseDict(stats, pb.ModelStatisticsResponse())

    @rpc
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Any
    ) -> Any:
        self._authorize(context, request.repository_name)
        parameters = parameter_values(request.parameters)
        repository.check_parameters("load", parameters, repository.LOAD_PARAMETERS)
        repository.require_loaded(await repository.load_model(self.state.store, request.model_name))
        return pb.RepositoryModelLoadResponse()

    @rpc
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Any
    ) -> Any:
        self._authorize(context, request.repository_name)
        parameters = parameter_values(request.parameters)
        repository.check_parameters("unload", parameters, repository.UNLOAD_PARAMETERS)
        await repository.unload_model(self.state.store, request.model_name)
        return pb.RepositoryModelUnloadResponse()

    @rpc
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Any) -> Any:
        self._authorize(context, request.repository_name)
        return index_response(repository.repository_index(self.state.store, request.ready))

    def _authorize(self, context: grpc.aio.ServicerContext, repository_name: str) -> None:
        """The API key, as over HTTP (``authorization: Bearer <key>`` metadata); one repository."""
        metadata_in = dict(context.invocation_metadata() or ())
        check_api_key(self.state.settings.api_key, metadata_in.get("authorization", ""))
        if repository_name:
            raise BadRequest("attnserve serves one repository: leave repository_name empty")
