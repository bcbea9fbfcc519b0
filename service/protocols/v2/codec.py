"""Open Inference Protocol (KServe v2) infer request/response codec, with no HTTP framework.

Pure bytes in, values out (and back), so the v2 router stays a few lines and every malformed
request is testable without a server. Requests may use Triton's binary tensor data extension
(see :mod:`.tensors`), which the official ``tritonclient.http`` uses by default; it sends
no Content-Type, so none is required here: ``Inference-Header-Content-Length`` alone says where
the JSON header ends. Every client mistake is a :class:`BadRequest` that names the input and what
to change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import BadRequest
from service.protocols.v2.tensors import (
    DATATYPES,
    FLOAT_DATATYPES,
    datatype_for,
    decode_binary_tensor,
    decode_json_tensor,
    encode_binary_tensor,
)

__all__ = [
    "DATATYPES",
    "InferRequest",
    "InputTensor",
    "OutputTensor",
    "RequestedOutput",
    "datatype_for",
    "encode_infer_response",
    "parse_infer_request",
    "require_finite",
]


@dataclass(frozen=True)
class InputTensor:
    """One decoded input: numeric data is an array of ``shape``; BYTES is one bytes per element."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[bytes]


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client asked for; ``binary_data`` already folds in ``binary_data_output``;
    ``classification``: the top-k of Triton's classification extension, when asked for."""

    name: str
    binary_data: bool
    classification: int | None = None


@dataclass(frozen=True)
class InferRequest:
    """A validated infer request; ``outputs`` is None when the client wants every output."""

    id: str | None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None
    parameters: dict[str, Any]
    binary_data_output: bool


@dataclass(frozen=True)
class OutputTensor:
    """One result tensor; its shape is ``data.shape`` and its dtype must match ``datatype``."""

    name: str
    datatype: str
    data: np.ndarray


def parse_infer_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a v2 infer request body; ``header_length`` is the Inference-Header-Content-Length.

    Inputs carrying ``binary_data_size`` take their bytes, in input order, from what follows the
    JSON header, and together they must use those bytes exactly.
    """
    json_end = _json_header_end(body, header_length)
    document = _load_json(body[:json_end], has_binary_section=header_length is not None)
    if not isinstance(document, dict):
        raise BadRequest("the infer request must be a JSON object with an 'inputs' list")
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadRequest(f"'id' must be a string, got {type(request_id).__name__}")
    parameters = _parameters(document.get("parameters"), "the request")
    binary_data_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_data_output, bool):
        raise BadRequest("request parameter 'binary_data_output' must be true or false")

    raw_inputs = document.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadRequest("the infer request needs a non-empty 'inputs' list")
    binary = memoryview(body)[json_end:]
    inputs: list[InputTensor] = []
    offset = 0
    for index, raw in enumerate(raw_inputs):
        tensor, used = _parse_input(raw, index, binary[offset:])
        if any(existing.name == tensor.name for existing in inputs):
            raise BadRequest(f"input '{tensor.name}' appears more than once in 'inputs'")
        inputs.append(tensor)
        offset += used
    if offset != len(binary):
        raise BadRequest(
            f"{len(binary)} bytes of binary data follow the JSON header but the inputs' "
            f"binary_data_size parameters account for {offset}; check "
            "Inference-Header-Content-Length and each binary_data_size"
        )
    outputs = _parse_outputs(document.get("outputs"), binary_data_output)
    return InferRequest(request_id, inputs, outputs, parameters, binary_data_output)


def require_finite(tensor: InputTensor) -> None:
    """Reject NaN/Inf in a floating-point input; binary data may carry them, the model may not
    want them, so the caller decides per model whether to call this."""
    if tensor.datatype in FLOAT_DATATYPES and not np.isfinite(tensor.data).all():
        raise BadRequest(f"input '{tensor.name}' contains NaN or Inf; send finite values")


def encode_infer_response(
    model_name: str,
    model_version: str,
    request_id: str | None,
    outputs: list[OutputTensor],
    binary: Callable[[str], bool] | set[str],
) -> tuple[bytes, dict[str, str]]:
    """Encode a v2 infer response body and the headers it needs.

    Outputs for which ``binary`` says so travel as raw bytes after the JSON header; the rest are
    flat JSON lists. JSON cannot carry NaN/Inf, so a JSON-encoded float output holding one raises
    ValueError (the caller reports a model failure, or the client asks for binary output). BYTES
    outputs (the classification extension's strings) are UTF-8 strings in JSON.
    """
    wants_binary = binary.__contains__ if isinstance(binary, set) else binary
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        header["id"] = request_id
    encoded: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in outputs:
        _check_output(output)
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.data.shape),
        }
        if wants_binary(output.name):
            chunk = encode_binary_tensor(output.datatype, output.data)
            entry["parameters"] = {"binary_data_size": len(chunk)}
            chunks.append(chunk)
        else:
            if output.datatype in FLOAT_DATATYPES and not np.isfinite(output.data).all():
                raise ValueError(
                    f"output '{output.name}' contains NaN or Inf, which JSON cannot carry; "
                    "request it with binary_data=true"
                )
            values = output.data.ravel().tolist()
            entry["data"] = [v.decode() for v in values] if output.datatype == "BYTES" else values
        encoded.append(entry)
    header["outputs"] = encoded
    json_bytes = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if not chunks:
        return json_bytes, {"content-type": "application/json"}
    headers = {
        "content-type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(json_bytes)),
    }
    return b"".join([json_bytes, *chunks]), headers


def _check_output(output: OutputTensor) -> None:
    """A mislabelled output is a bug in the service, not the client: fail loudly."""
    if output.datatype not in DATATYPES:
        raise ValueError(f"output '{output.name}': cannot encode datatype {output.datatype!r}")
    if output.data.dtype != DATATYPES[output.datatype]:
        raise ValueError(
            f"output '{output.name}' is labelled {output.datatype} but holds {output.data.dtype}"
        )


def _json_header_end(body: bytes, header_length: str | None) -> int:
    if header_length is None:
        return len(body)
    text = header_length.strip()
    if not (text.isascii() and text.isdigit()):
        raise BadRequest(
            f"Inference-Header-Content-Length must be a non-negative integer, got {header_length!r}"
        )
    length = int(text)
    if length > len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes"
        )
    return length


def _reject_constant(name: str) -> Any:
    raise BadRequest(
        f"the JSON header contains {name}, which is not valid JSON; send finite numbers "
        "(or binary tensor data)"
    )


def _load_json(header: bytes, *, has_binary_section: bool) -> Any:
    try:
        return json.loads(header, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        hint = (
            "check Inference-Header-Content-Length"
            if has_binary_section
            else "if binary tensor data follows the JSON, send Inference-Header-Content-Length"
        )
        raise BadRequest(f"the infer request header is not valid JSON ({error}); {hint}") from None


def _parameters(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadRequest(f"'parameters' of {where} must be a JSON object")
    if "shared_memory_region" in raw:
        raise BadRequest(f"{where}: the shared memory extension is not supported; send the data")
    return raw


def _parse_input(raw: Any, index: int, binary: memoryview) -> tuple[InputTensor, int]:
    """Validate one ``$request_input``; returns it and how many binary bytes it consumed."""
    if not isinstance(raw, dict):
        raise BadRequest(f"inputs[{index}] must be a JSON object")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(f"inputs[{index}] is missing 'name' (a non-empty string)")
    datatype = raw.get("datatype")
    if not isinstance(datatype, str):
        raise BadRequest(f"input '{name}' is missing 'datatype' (e.g. \"FP32\")")
    if datatype not in DATATYPES:
        raise BadRequest(
            f"input '{name}': unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}"
        )
    shape = _parse_shape(name, raw)
    parameters = _parameters(raw.get("parameters"), f"input '{name}'")
    size = parameters.get("binary_data_size")
    if size is not None and "data" in raw:
        raise BadRequest(f"input '{name}' has both 'data' and binary_data_size; send one of them")
    if size is None:
        if "data" not in raw:
            raise BadRequest(f"input '{name}' has neither 'data' nor binary_data_size")
        data = decode_json_tensor(name, datatype, shape, raw["data"])
        return InputTensor(name, datatype, shape, data), 0
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(
            f"input '{name}': binary_data_size must be a non-negative integer, got {size!r}"
        )
    if size > len(binary):
        raise BadRequest(
            f"input '{name}': binary_data_size is {size} but only {len(binary)} bytes of binary "
            "data remain after the JSON header and earlier inputs"
        )
    data = decode_binary_tensor(name, datatype, shape, binary[:size])
    return InputTensor(name, datatype, shape, data), size


def _parse_shape(name: str, raw: dict[str, Any]) -> tuple[int, ...]:
    shape = raw.get("shape")
    if shape is None:
        raise BadRequest(f"input '{name}' is missing 'shape' (a list of dimension sizes)")
    if not isinstance(shape, list) or not all(
        isinstance(dim, int) and not isinstance(dim, bool) for dim in shape
    ):
        raise BadRequest(f"input '{name}': 'shape' must be a list of integers, got {shape!r}")
    if any(dim < 0 for dim in shape):
        raise BadRequest(f"input '{name}': 'shape' {shape} has a negative dimension")
    return tuple(shape)


def _parse_outputs(raw: Any, default_binary: bool) -> list[RequestedOutput] | None:
    """``$request_output`` list; absent, null or empty means every output the model has."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("'outputs' must be a list of {\"name\": ...} objects")
    outputs: list[RequestedOutput] = []
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"outputs[{index}] is missing 'name' (a non-empty string)")
        parameters = _parameters(item.get("parameters"), f"output '{name}'")
        classes = parameters.get("classification")
        if classes is not None and (type(classes) is not int or classes < 1):
            raise BadRequest(f"output '{name}': 'classification' must be a positive integer")
        binary_data = parameters.get("binary_data", default_binary)
        if not isinstance(binary_data, bool):
            raise BadRequest(f"output '{name}': parameter 'binary_data' must be true or false")
        if any(existing.name == name for existing in outputs):
            raise BadRequest(f"output '{name}' appears more than once in 'outputs'")
        outputs.append(RequestedOutput(name, binary_data, classes))
    return outputs or None
