"""The v2 codec against the official client's real wire bytes, and every way a request can be bad.

Compatibility is proven with ``tritonclient.http`` itself: its request builder produces the exact
bytes it would send (no server needed), and its response parser reads what we encode.
"""

from __future__ import annotations

import io
import json
import struct
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from service.errors import BadRequest
from service.protocols.v2.codec import (
    DATATYPES,
    InputTensor,
    OutputTensor,
    RequestedOutput,
    datatype_for,
    encode_infer_response,
    parse_infer_request,
    require_finite,
)


@pytest.fixture(scope="module")
def triton() -> ModuleType:
    return pytest.importorskip("tritonclient.http")


def _wire(triton: ModuleType, arrays: dict[str, tuple[np.ndarray, str, bool]], **kwargs: Any):
    """Body and header value exactly as tritonclient would send them."""
    inputs = []
    for name, (array, datatype, binary) in arrays.items():
        infer_input = triton.InferInput(name, list(array.shape), datatype)
        infer_input.set_data_from_numpy(array, binary_data=binary)
        inputs.append(infer_input)
    body, json_size = triton.InferenceServerClient.generate_request_body(inputs, **kwargs)
    return body, None if json_size is None else str(json_size)


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_numeric_inputs_round_trip(triton: ModuleType, binary: bool) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "pixels": (rng.standard_normal((2, 3, 4, 4)).astype(np.float32), "FP32", binary),
        "mask": (rng.integers(0, 256, (2, 4, 4), dtype=np.uint8), "UINT8", binary),
        "ids": (np.array([[-(2**40), 7], [2**62, 0]], dtype=np.int64), "INT64", binary),
    }
    outputs = [triton.InferRequestedOutput("logits", binary_data=False)]
    body, header_length = _wire(triton, arrays, outputs=outputs, request_id="req-1")
    assert (header_length is not None) == binary

    request = parse_infer_request(body, header_length)

    assert request.id == "req-1"
    assert request.outputs == [RequestedOutput("logits", binary_data=False)]
    assert [tensor.name for tensor in request.inputs] == list(arrays)
    for tensor, (array, datatype, _) in zip(request.inputs, arrays.values(), strict=True):
        assert (tensor.datatype, tensor.shape) == (datatype, array.shape)
        assert isinstance(tensor.data, np.ndarray) and tensor.data.dtype == array.dtype
        np.testing.assert_array_equal(tensor.data, array)
        assert tensor.data.flags.writeable


def test_tritonclient_bytes_images_binary_and_mixed_order(triton: ModuleType) -> None:
    images = np.array([_png(seed) for seed in range(3)], dtype=np.object_)
    scale = np.array([0.5, 2.0], dtype=np.float32)
    arrays = {
        "scale": (scale, "FP32", True),
        "names": (np.array([b"a", b"b"], dtype=np.object_), "BYTES", False),
        "images": (images, "BYTES", True),
    }
    body, header_length = _wire(triton, arrays)  # no outputs: client asks for binary_data_output

    request = parse_infer_request(body, header_length)

    assert request.outputs is None and request.binary_data_output is True
    assert request.inputs[1].data == [b"a", b"b"]
    assert request.inputs[2].data == list(images) and request.inputs[2].shape == (3,)
    np.testing.assert_array_equal(request.inputs[0].data, scale)


def test_outputs_inherit_binary_data_output_unless_they_say_otherwise() -> None:
    document = {
        "inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}],
        "outputs": [{"name": "a"}, {"name": "b", "parameters": {"binary_data": False}}],
        "parameters": {"binary_data_output": True},
    }
    request = parse_infer_request(json.dumps(document).encode(), None)
    assert request.outputs == [RequestedOutput("a", True), RequestedOutput("b", False)]


def test_json_data_may_be_nested_and_bytes_are_utf8() -> None:
    document = {
        "inputs": [
            {"name": "m", "datatype": "INT32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
            {"name": "s", "datatype": "BYTES", "shape": [2], "data": ["héllo", ""]},
            {"name": "b", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            {"name": "f", "datatype": "FP16", "shape": [], "data": 1},
        ]
    }
    m, s, b, f = parse_infer_request(json.dumps(document).encode(), None).inputs
    np.testing.assert_array_equal(m.data, np.array([[1, 2], [3, 4]], dtype=np.int32))
    assert s.data == ["héllo".encode(), b""]
    assert b.data.dtype == np.bool_ and b.data.tolist() == [True, False]
    assert f.data.dtype == np.float16 and f.data.shape == ()


@pytest.mark.parametrize("binary_names", [set(), {"heatmap", "label"}, {"heatmap"}])
def test_responses_decode_with_tritonclient(triton: ModuleType, binary_names: set[str]) -> None:
    outputs = [
        OutputTensor("heatmap", "FP32", np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)),
        OutputTensor("label", "INT64", np.array([3, -(2**50)], dtype=np.int64)),
        OutputTensor("count", "INT32", np.array([[7]], dtype=np.int32)),
        OutputTensor("mask", "UINT8", np.arange(6, dtype=np.uint8).reshape(2, 3)),
    ]
    body, headers = encode_infer_response("vit", "1", "req-9", outputs, binary_names)

    header_length = headers.get("Inference-Header-Content-Length")
    expected_type = "application/octet-stream" if binary_names else "application/json"
    assert headers["content-type"] == expected_type
    assert (header_length is None) == (not binary_names)
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_length)
    response = result.get_response()
    assert (response["model_name"], response["model_version"], response["id"]) == (
        "vit",
        "1",
        "req-9",
    )
    for output in outputs:
        decoded = result.as_numpy(output.name)
        assert decoded.dtype == output.data.dtype
        np.testing.assert_array_equal(decoded, output.data)
        entry = result.get_output(output.name)
        assert ("data" in entry) == (output.name not in binary_names)


def test_binary_output_carries_nan_and_predicate_selects_binary(triton: ModuleType) -> None:
    nan = OutputTensor("x", "FP32", np.array([np.nan, 1.0], dtype=np.float32))
    body, headers = encode_infer_response("m", "2", None, [nan], lambda name: name == "x")
    result = triton.InferenceServerClient.parse_response_body(
        body, header_length=headers["Inference-Header-Content-Length"]
    )
    assert "id" not in result.get_response()
    assert np.isnan(result.as_numpy("x")[0])


@pytest.mark.parametrize("binary", [True, False])
def test_bytes_outputs_decode_with_tritonclient(triton: ModuleType, binary: bool) -> None:
    """The classification extension's strings: length-prefixed binary, or JSON strings."""
    strings = np.array([[b"0.9:1:circle", b"0.1:0:square"], [b"1:0:x", b""]], dtype=np.object_)
    body, headers = encode_infer_response(
        "m", "1", None, [OutputTensor("top", "BYTES", strings)], {"top"} if binary else set()
    )
    header_length = headers.get("Inference-Header-Content-Length")
    result = triton.InferenceServerClient.parse_response_body(body, header_length=header_length)
    decoded = result.as_numpy("top")
    assert decoded.shape == (2, 2)
    as_bytes = [v if isinstance(v, bytes) else v.encode() for v in decoded.ravel()]
    assert as_bytes == strings.ravel().tolist()


def test_json_response_shape() -> None:
    output = OutputTensor("y", "FP32", np.array([[0.5, 1.5]], dtype=np.float32))
    body, _ = encode_infer_response("m", "1", None, [output], set())
    assert json.loads(body) == {
        "model_name": "m",
        "model_version": "1",
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1.5]}],
    }


@pytest.mark.parametrize(
    ("output", "match"),
    [
        (OutputTensor("y", "FP32", np.array([np.inf], dtype=np.float32)), "NaN or Inf"),
        (OutputTensor("y", "FP32", np.array([1.0], dtype=np.float64)), "holds float64"),
        (OutputTensor("y", "BYTES", np.array([1], dtype=np.int32)), "labelled BYTES but holds"),
        (OutputTensor("y", "BF16", np.array([1], dtype=np.int32)), "cannot encode"),
    ],
)
def test_unencodable_outputs_raise_value_error(output: OutputTensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_infer_response("m", "1", None, [output], set())


def test_require_finite() -> None:
    require_finite(InputTensor("i", "INT32", (1,), np.array([1], dtype=np.int32)))
    require_finite(InputTensor("f", "FP32", (1,), np.array([1.0], dtype=np.float32)))
    bad = InputTensor("f", "FP16", (2,), np.array([1.0, np.nan], dtype=np.float16))
    with pytest.raises(BadRequest, match="'f' contains NaN or Inf"):
        require_finite(bad)


def test_datatypes_table() -> None:
    assert set(DATATYPES) == {
        *(f"UINT{bits}" for bits in (8, 16, 32, 64)),
        *(f"INT{bits}" for bits in (8, 16, 32, 64)),
        *("BOOL", "FP16", "FP32", "FP64", "BYTES"),
    }
    assert datatype_for(np.dtype(np.float32)) == "FP32" and datatype_for(np.uint8) == "UINT8"
    with pytest.raises(ValueError, match="complex64"):
        datatype_for(np.complex64)


def _doc(*inputs: dict[str, Any], **top: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **top}).encode()


def _fp32(**fields: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0], **fields}


def _typed(datatype: str, data: Any) -> bytes:
    shape = [len(data)] if isinstance(data, list) else []
    return _doc({"name": "x", "datatype": datatype, "shape": shape, "data": data})


def _binary(datatype: str, shape: list[int], payload: bytes, size: int | None = None) -> tuple:
    """A one-input binary request: (body, header_length)."""
    parameters = {"binary_data_size": len(payload) if size is None else size}
    header = _doc({"name": "x", "datatype": datatype, "shape": shape, "parameters": parameters})
    return header + payload, str(len(header))


def _strings(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(element)) + element for element in elements)


BAD_REQUESTS: dict[str, tuple[bytes, str | None, str]] = {
    "not json": (b"{not json", None, "not valid JSON"),
    "binary without header length": (_doc(_fp32()) + b"\0" * 8, None, "send Inference-Header"),
    "too deeply nested": (b"[" * 100_000, None, "not valid JSON"),
    "header length not int": (_doc(_fp32()), "12a", "must be a non-negative integer"),
    "header length negative": (_doc(_fp32()), "-1", "must be a non-negative integer"),
    "header length past body": (b"{}", "3", "is 3 but the body has only 2 bytes"),
    "top level not object": (b"[1, 2]", None, "must be a JSON object"),
    "inputs missing": (b"{}", None, "non-empty 'inputs' list"),
    "inputs empty": (_doc(), None, "non-empty 'inputs' list"),
    "input not object": (_doc(5), None, r"inputs\[0\] must be a JSON object"),
    "name missing": (_doc(_fp32(name=None)), None, r"inputs\[0\] is missing 'name'"),
    "datatype missing": (_doc(_fp32(datatype=None)), None, "'x' is missing 'datatype'"),
    "shape missing": (_doc(_fp32(shape=None)), None, "'x' is missing 'shape'"),
    "unknown datatype": (_doc(_fp32(datatype="FP8")), None, "unknown datatype 'FP8'"),
    "shape negative": (_doc(_fp32(shape=[-1, -2])), None, "negative dimension"),
    "shape not list": (_doc(_fp32(shape="2")), None, "must be a list of integers"),
    "shape floats": (_doc(_fp32(shape=[2.0])), None, "must be a list of integers"),
    "shape bools": (_doc(_fp32(shape=[True, True])), None, "must be a list of integers"),
    "too few elements": (_doc(_fp32(shape=[3])), None, "has 2 elements but shape .3. needs 3"),
    "nested count": (_doc(_fp32(shape=[2, 2], data=[[1], [2]])), None, "has 2 elements"),
    "string for FP32": (_typed("FP32", [1.0, "2"]), None, "element 1 is '2' .str."),
    "bool for FP32": (_typed("FP32", [True]), None, "FP32 data must be numbers"),
    "float for INT32": (_typed("INT32", [1, 2.5]), None, "INT32 data must be integers"),
    "bool for INT64": (_typed("INT64", [False]), None, "element 0 is False .bool."),
    "int for BOOL": (_typed("BOOL", [1]), None, "BOOL data must be true/false"),
    "int for BYTES": (_typed("BYTES", [1]), None, "BYTES data must be strings"),
    "UINT8 over range": (_typed("UINT8", [1, 300]), None, "300 is out of range for UINT8"),
    "UINT8 negative": (_typed("UINT8", [-1]), None, "-1 is out of range for UINT8"),
    "NaN literal": (b'{"inputs": [{"data": [NaN]}]}', None, "contains NaN, which is not valid"),
    "Infinity literal": (b'{"inputs": [{"data": [Infinity]}]}', None, "contains Infinity"),
    "-Infinity literal": (b'{"inputs": [{"data": [-Infinity]}]}', None, "contains -Infinity"),
    "FP32 overflow": (_typed("FP32", [1e39]), None, "out of range for FP32"),
    "FP64 overflow": (
        _typed("FP64", [1.0]).replace(b"1.0", b"1e999"),
        None,
        "out of range for FP64",
    ),
    "huge int FP": (_typed("FP32", [10**400]), None, "too large for FP32"),
    "lone surrogate": (_typed("BYTES", ["\ud800"]), None, "not valid Unicode"),
    "duplicate input": (_doc(_fp32(), _fp32()), None, "'x' appears more than once in 'inputs'"),
    "data and binary size": (
        _doc(_fp32(parameters={"binary_data_size": 8})),
        None,
        "both 'data' and binary_data_size",
    ),
    "no data at all": (
        _doc({"name": "x", "datatype": "FP32", "shape": [1]}),
        None,
        "neither 'data' nor",
    ),
    "id not string": (_doc(_fp32(), id=7), None, "'id' must be a string"),
    "parameters not object": (_doc(_fp32(), parameters=[]), None, "must be a JSON object"),
    "binary_data_output not bool": (
        _doc(_fp32(), parameters={"binary_data_output": "yes"}),
        None,
        "must be true or false",
    ),
    "shared memory": (
        _doc(_fp32(data=None, parameters={"shared_memory_region": "r"})),
        None,
        "not supported",
    ),
    "outputs not list": (_doc(_fp32(), outputs={"name": "y"}), None, "'outputs' must be a list"),
    "output without name": (_doc(_fp32(), outputs=[{}]), None, r"outputs\[0\] is missing 'name'"),
    "output not object": (_doc(_fp32(), outputs=["y"]), None, r"outputs\[0\] is missing 'name'"),
    "duplicate output": (_doc(_fp32(), outputs=[{"name": "y"}] * 2), None, "more than once"),
    "output binary_data not bool": (
        _doc(_fp32(), outputs=[{"name": "y", "parameters": {"binary_data": 1}}]),
        None,
        "'binary_data' must be true or false",
    ),
    "classification not positive": (
        _doc(_fp32(), outputs=[{"name": "y", "parameters": {"classification": 0}}]),
        None,
        "'classification' must be a positive integer",
    ),
    "classification not int": (
        _doc(_fp32(), outputs=[{"name": "y", "parameters": {"classification": True}}]),
        None,
        "'classification' must be a positive integer",
    ),
    "binary size past end": (*_binary("FP32", [2], b"\0" * 4, size=8), "only 4 bytes"),
    "binary size negative": (*_binary("FP32", [2], b"", size=-8), "non-negative integer"),
    "binary size float": (*_binary("FP32", [2], b"", size=8.0), "non-negative integer"),
    "binary size vs shape": (*_binary("FP32", [3], b"\0" * 8), "needs 12 .3 elements x 4"),
    "binary bytes left over": (
        _binary("FP32", [2], b"\0" * 8)[0] + b"\0",
        _binary("FP32", [2], b"\0" * 8)[1],
        "9 bytes of binary data follow the JSON header but .* account for 8",
    ),
    "binary BOOL not 0/1": (*_binary("BOOL", [2], b"\x01\x02"), "0 or 1; found 2"),
    "BYTES truncated prefix": (*_binary("BYTES", [2], _strings(b"ab") + b"\1\0"), "truncated"),
    "BYTES length overrun": (*_binary("BYTES", [1], struct.pack("<I", 9) + b"abc"), "declares 9"),
    "BYTES too few": (*_binary("BYTES", [3], _strings(b"a", b"b")), "holds 2 elements"),
    "BYTES too many": (*_binary("BYTES", [1], _strings(b"a", b"b")), "more than the 1 elements"),
}


@pytest.mark.parametrize(
    ("body", "header_length", "match"), BAD_REQUESTS.values(), ids=BAD_REQUESTS
)
def test_bad_requests_are_rejected_with_a_precise_message(
    body: bytes, header_length: str | None, match: str
) -> None:
    with pytest.raises(BadRequest, match=match) as caught:
        parse_infer_request(body, header_length)
    assert caught.value.status == 400
