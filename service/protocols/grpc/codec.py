"""Protobuf infer messages to the v2 codec's values and back, so gRPC validates exactly as HTTP.

A ``ModelInferRequest`` is rewritten as the HTTP v2 request it stands for (a JSON header with
each input as Triton binary data) and parsed by the v2 codec's ``parse_infer_request``: one
validator for names, datatypes, shapes, sizes, BYTES elements, outputs and parameters.
Typed ``contents`` are checked here (count, field, range) and turned into those same bytes.
Responses always carry ``raw_output_contents``, as Triton's do.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from google.protobuf.json_format import ParseDict

from service.errors import BadRequest
from service.protocols.grpc import inference_pb2 as pb
from service.protocols.v2.codec import (
    DATATYPES,
    InferRequest,
    OutputTensor,
    parse_infer_request,
)
from service.protocols.v2.tensors import encode_binary_tensor

#: the InferTensorContents field that carries each datatype (FP16 has none: raw only)
CONTENTS_FIELD = {
    "BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents",
    "INT32": "int_contents", "INT64": "int64_contents", "UINT8": "uint_contents",
    "UINT16": "uint_contents", "UINT32": "uint_contents", "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents",
}  # fmt: skip

Parameters = Any  # a protobuf map<string, InferParameter>


def parameter_values(parameters: Parameters) -> dict[str, Any]:
    """``InferParameter`` map -> plain values (an unset parameter is left out)."""
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        if kind is not None:
            values[key] = getattr(parameter, kind)
    return values


def parse_model_infer(request: pb.ModelInferRequest) -> InferRequest:
    """Validate a ``ModelInferRequest`` as the v2 codec validates an HTTP one."""
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise BadRequest(
            f"raw_input_contents has {len(raw)} entries but there are {len(request.inputs)} "
            "inputs; send one entry per input, in input order"
        )
    inputs, chunks = [], []
    for index, tensor in enumerate(request.inputs):
        if raw and tensor.HasField("contents"):
            raise BadRequest(
                f"input '{tensor.name}' has typed contents although raw_input_contents is "
                "used; send every input one way"
            )
        chunk = raw[index] if raw else typed_contents_bytes(tensor)
        parameters = {**parameter_values(tensor.parameters), "binary_data_size": len(chunk)}
        inputs.append({"name": tensor.name, "datatype": tensor.datatype,
                       "shape": list(tensor.shape), "parameters": parameters})  # fmt: skip
        chunks.append(chunk)
    document: dict[str, Any] = {
        "inputs": inputs,
        "parameters": parameter_values(request.parameters),
        "outputs": [
            {"name": o.name, "parameters": parameter_values(o.parameters)} for o in request.outputs
        ],
    }
    if request.id:
        document["id"] = request.id
    header = json.dumps(document, separators=(",", ":")).encode()
    return parse_infer_request(b"".join([header, *chunks]), str(len(header)))


def typed_contents_bytes(tensor: pb.ModelInferRequest.InferInputTensor) -> bytes:
    """An input's typed ``contents`` as the raw bytes that carry the same values."""
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        if tensor.datatype in DATATYPES:
            raise BadRequest(
                f"input '{tensor.name}': {tensor.datatype} has no typed contents field; send it "
                "in raw_input_contents"
            )
        return b""  # the v2 codec names the unknown datatype
    values = getattr(tensor.contents, field)
    count = math.prod(tensor.shape)
    if len(values) != count:
        raise BadRequest(
            f"input '{tensor.name}': contents.{field} holds {len(values)} values but shape "
            f"{list(tensor.shape)} needs {count}"
        )
    if tensor.datatype == "BYTES":
        return encode_binary_tensor("BYTES", np.array(list(values), dtype=np.object_))
    dtype = DATATYPES[tensor.datatype]
    if dtype.kind in "iu":
        wide = np.asarray(values, dtype=np.uint64 if dtype.kind == "u" else np.int64)
        limits = np.iinfo(dtype)
        if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
            raise BadRequest(
                f"input '{tensor.name}': a value is out of range for {tensor.datatype} "
                f"[{limits.min}, {limits.max}]"
            )
        return encode_binary_tensor(tensor.datatype, wide)
    return encode_binary_tensor(tensor.datatype, np.asarray(values))


def encode_model_infer(
    model_name: str, model_version: str, request_id: str | None, outputs: list[OutputTensor]
) -> pb.ModelInferResponse:
    """The response, every output as ``raw_output_contents`` (NaN and Inf travel as they are)."""
    response = pb.ModelInferResponse(
        model_name=model_name, model_version=model_version, id=request_id or ""
    )
    for output in outputs:
        response.outputs.add(name=output.name, datatype=output.datatype, shape=output.data.shape)
        response.raw_output_contents.append(encode_binary_tensor(output.datatype, output.data))
    return response


def model_metadata(metadata: dict[str, Any]) -> pb.ModelMetadataResponse:
    """The v2 metadata document (:func:`service.protocols.v2.router.metadata`) as protobuf."""
    return ParseDict(metadata, pb.ModelMetadataResponse())


def server_metadata(metadata: dict[str, Any]) -> pb.ServerMetadataResponse:
    return ParseDict(metadata, pb.ServerMetadataResponse())
