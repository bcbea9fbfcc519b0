"""The Open Inference Protocol over gRPC (KServe v2 ``inference.GRPCInferenceService``), so
``tritonclient.grpc`` and other standard clients work: ``servicer`` (the RPCs, on the same
engine as HTTP), ``codec`` (protobuf to the v2 codec's requests and back), ``status`` (service
errors to gRPC status codes), ``server`` (the grpc.aio server on ``ATTNSERVE_GRPC_PORT``).

``inference.proto`` is the wire contract; the ``inference_pb2*`` modules beside it are generated
from it by ``make proto`` and checked in, so neither the image nor a user needs grpcio-tools.
They register the ``inference.*`` names in protobuf's default pool, as ``tritonclient.grpc``
does with its own copy: one process cannot import both (tests talk to a server process).
"""
