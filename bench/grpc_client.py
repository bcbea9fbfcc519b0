"""The benchmark's gRPC load connection, with the HTTP one's interface (``exchange``, ``close``,
``is_open``), so the same bounded load loops (:mod:`bench.loadgen`) drive either protocol.

Requests are serialised once (``GrpcRequest.encode``) and sent as bytes over one channel (one
HTTP/2 connection) per load worker, as HTTP keeps one keep-alive connection per worker: what is
measured is the server, not protobuf encoding in the client. Only 127.0.0.1 is ever dialled.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

import grpc
from tritonclient.grpc import service_pb2

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
#: replies larger than gRPC's 4 MiB default (batches of maps) are still replies
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]


class GrpcConnection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.UnaryUnaryMultiCallable | None = None

    @property
    def is_open(self) -> bool:
        return self.channel is not None

    async def exchange(self, raw: bytes) -> tuple[int | str, bytes]:
        """One ModelInfer call: 200 and the reply, or the status code's name and nothing."""
        if self._call is None:
            self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", CHANNEL_OPTIONS)
            self._call = self.channel.unary_unary(MODEL_INFER)  # bytes in, bytes out
        try:
            return 200, await self._call(raw)
        except grpc.aio.AioRpcError as error:
            return error.code().name, b""

    def close(self) -> None:
        """Closing a channel is a coroutine; the load loop's own event loop runs it."""
        if self.channel is not None:
            asyncio.get_running_loop().create_task(self.channel.close())
        self.channel = self._call = None


@dataclass(frozen=True)
class GrpcRequest:
    """One ModelInfer request to the gRPC port ``port`` (the load loops' port is HTTP's)."""

    port: int
    message: bytes

    def encode(self) -> bytes:
        return self.message

    def connect(self, _http_port: int) -> GrpcConnection:
        return GrpcConnection(self.port)


def infer_bytes_request(port: int, model: str, jpeg: bytes, outputs: list[str]) -> GrpcRequest:
    """One JPEG as a BYTES input in ``raw_input_contents``, as ``tritonclient.grpc`` sends it."""
    request = service_pb2.ModelInferRequest(model_name=model)
    request.inputs.add(name="image", datatype="BYTES", shape=[1])
    for name in outputs:
        request.outputs.add(name=name)
    request.raw_input_contents.append(struct.pack("<I", len(jpeg)) + jpeg)
    return GrpcRequest(port, request.SerializeToString())
