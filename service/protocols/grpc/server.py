"""The grpc.aio server on ``ATTNSERVE_GRPC_PORT``: started and stopped by the HTTP server
(:mod:`service.http.server`), in its event loop, so both protocols share one engine.

Its message limit is the HTTP upload limit (plus room for the request's own fields), so a body
HTTP refuses with 413 is refused here with RESOURCE_EXHAUSTED before it is read.
"""

from __future__ import annotations

import logging

import grpc

from service.protocols.grpc.inference_pb2_grpc import add_GRPCInferenceServiceServicer_to_server
from service.protocols.grpc.servicer import InferenceServicer
from service.state import AppState

log = logging.getLogger("attnserve")

#: the request's names, shapes and parameters around the tensor bytes
MESSAGE_OVERHEAD_BYTES = 64 * 1024


def listen_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start_grpc_server(state: AppState) -> grpc.aio.Server:
    """Listening on ``grpc_port`` (the caller starts none when it is 0: gRPC off)."""
    settings = state.settings
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_upload_bytes + MESSAGE_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ]
    )
    add_GRPCInferenceServiceServicer_to_server(InferenceServicer(state), server)
    address = listen_address(settings.host, settings.grpc_port)
    server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (inference.GRPCInferenceService) listening on %s", address)
    return server
