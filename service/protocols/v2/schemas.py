"""What OpenAPI says about v2 ``infer``: its request bodies and its responses.

The handler reads its body itself (:mod:`.codec`), so FastAPI cannot infer the request body;
it is declared here as plain JSON Schema (``openapi_extra``), for JSON and for Triton's binary
tensor data extension, without changing what the handler accepts. The responses are pydantic
models, so they appear by name in the OpenAPI components and generated clients get types.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.protocols.v2.codec import DATATYPES

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY = {"type": "string", "format": "binary"}

_PARAMETERS = {"type": "object", "description": "protocol parameters, e.g. binary_data_size"}
_REQUEST_PARAMETERS = {
    "type": "object",
    "description": "protocol parameters, e.g. binary_data_output; Triton's schedule policy",
    "properties": {
        "priority": {"type": "integer", "minimum": 0, "description": "queue level, 1 the "
                     "highest (the model's priority_levels); 0: its default_priority_level"},
        "timeout": {"type": "integer", "minimum": 0,
                    "description": "deadline in microseconds (it may only shorten it); 0: none"},
    },
}  # fmt: skip
_INPUT = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string", "description": "'input' (FP32 tensors) or 'image' (BYTES)"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": list(DATATYPES)},
        "parameters": _PARAMETERS,
        "data": {
            "type": "array",
            "description": "row-major values, flat or nested; BYTES: one string per element. "
            "Absent when the tensor travels as binary data (parameters.binary_data_size)",
        },
    },
}
_OUTPUT = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "parameters": _PARAMETERS},
}
INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": _REQUEST_PARAMETERS,
        "inputs": {"type": "array", "items": _INPUT},
        "outputs": {"type": "array", "items": _OUTPUT, "description": "default: every output"},
    },
}

#: ``openapi_extra`` of the infer routes: the JSON body, or the binary extension's body (the
#: JSON header, then the raw tensors) with the header that says where the JSON ends.
INFER_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": HEADER_LENGTH,
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 0},
            "description": "binary tensor data extension: bytes of the JSON header that starts "
            "the body; the raw tensors follow it",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": INFER_REQUEST},
            "application/octet-stream": {
                "schema": {
                    **BINARY,
                    "description": f"the JSON header ({HEADER_LENGTH} bytes), then the tensors",
                }
            },
        },
    },
}


class InferOutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = Field(
        default=None, description="binary_data_size when the tensor travels as binary data"
    )
    data: list[Any] | None = Field(default=None, description="row-major values, flattened")


class InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutputTensor]


class V2Error(BaseModel):
    """The v2 protocol's error body (what tritonclient and KServe clients parse)."""

    error: str
    code: str = Field(description="attnserve's machine-readable code")


def infer_responses(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The infer routes' ``responses``: JSON or binary on success, ``V2Error`` otherwise."""
    success = {
        "model": InferResponse,
        "description": "outputs as JSON, or with binary outputs the JSON header then their bytes",
        "content": {"application/octet-stream": {"schema": BINARY}},
        "headers": {HEADER_LENGTH: {"schema": {"type": "integer"},
                                    "description": "with binary outputs: bytes of JSON header"}},
    }  # fmt: skip
    failures = {s: {"model": V2Error, "description": what} for s, what in errors.items()}
    return {200: success, **failures}
