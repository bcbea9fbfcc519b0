"""The KServe v2 part of the hostile corpus: the infer request's JSON structure, its tensors,
the binary tensor extension, and the batches issue 13 found (empty, smuggled past the cap,
finite values that overflow the model)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from tests.reliability.corpus import formats
from tests.reliability.corpus import images as img
from tests.reliability.hostile_inputs import CLASSIFIER, SEGMENTER, V2_INFER, Case


def v2(name: str, status: int, message: str, document: Any, path: str = V2_INFER,
       headers: dict | None = None, tail: bytes = b"") -> Case:  # fmt: skip
    """A v2 infer request: a JSON document (or raw text), optionally followed by binary data
    with its Inference-Header-Content-Length."""
    head = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = dict(headers or {"content-type": "application/json"})
    if tail:
        headers["inference-header-content-length"] = str(len(head))
    return Case(name, status, message, path=path, params={}, headers=headers,
                content=lambda: head + tail)  # fmt: skip


def fp32_input(shape: list[int], **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": shape, **extra}]}


def bytes_tensor(*images: bytes) -> bytes:
    """Triton's BYTES serialisation: per element a 4-byte little-endian length, then the bytes."""
    return b"".join(struct.pack("<I", len(item)) + item for item in images)


def v2_images(
    name: str, status: int, message: str, *images: bytes, path: str = V2_INFER,
    shape: list[int] | None = None, **document: Any,
) -> Case:  # fmt: skip
    """A v2 infer request with encoded images as one binary BYTES input (``shape`` [N])."""
    tail = bytes_tensor(*images)
    tensor = {"name": "image", "datatype": "BYTES", "shape": shape or [len(images)],
              "parameters": {"binary_data_size": len(tail)}}  # fmt: skip
    return v2(name, status, message, {"inputs": [tensor], **document}, path=path, tail=tail)


FULL = [1, 3, 64, 64]
INF_TENSOR = np.full(FULL, np.inf, dtype="<f4").tobytes()
NAN_TENSOR = np.full(FULL, np.nan, dtype="<f4").tobytes()
HUGE_TENSOR = np.full(FULL, 3e38, dtype="<f4").tobytes()
BYTES_ELEMENT = struct.pack("<I", 10) + b"0123456789"


# A table, one case a line or two: kept as written.
# fmt: off
V2_CASES: list[Case] = [
    v2("v2 shape vs data length", 400, "'data' has 5 elements", fp32_input(FULL, data=[0.0] * 5)),
    v2("v2 unknown datatype", 400, "unknown datatype 'FP33'",
       {"inputs": [{"name": "input", "datatype": "FP33", "shape": [1], "data": [1.0]}]}),
    v2("v2 INT32 where FP32 is needed", 400, "must be FP32",
       {"inputs": [{"name": "input", "datatype": "INT32", "shape": FULL,
                    "data": [0] * (3 * 64 * 64)}]}),
    v2("v2 wrong spatial size", 400, "must be FP32 [N, 3, 64, 64]",
       fp32_input([1, 3, 8, 8], data=[0.0] * 192)),
    v2("v2 NaN in JSON", 400, "NaN", b'{"inputs":[{"name":"input","datatype":"FP32",'
       b'"shape":[1],"data":[NaN]}]}'),
    v2("v2 Infinity in JSON", 400, "Infinity", b'{"inputs":[{"name":"input","datatype":"FP32",'
       b'"shape":[1],"data":[Infinity]}]}'),
    v2("v2 Inf in binary FP32", 400, "NaN or Inf",
       fp32_input(FULL, parameters={"binary_data_size": len(INF_TENSOR)}), tail=INF_TENSOR),
    v2("v2 missing inputs", 400, "non-empty 'inputs'", {"outputs": [{"name": "logits"}]}),
    v2("v2 binary_data_size over the data", 400, "binary_data_size is 999",
       fp32_input(FULL, parameters={"binary_data_size": 999}), tail=b"\0" * 16),
    v2("v2 binary data left over", 400, "account for 16",
       fp32_input([1, 2, 2], parameters={"binary_data_size": 16}), tail=b"\0" * 32),
    v2("v2 binary size vs shape", 400, "needs 49152",
       fp32_input(FULL, parameters={"binary_data_size": 16}), tail=b"\0" * 16),
    v2("v2 BYTES length prefix lies", 400, "declares 10 bytes",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                    "parameters": {"binary_data_size": 8}}]}, tail=BYTES_ELEMENT[:8]),
    v2("v2 header length over the body", 400, "Inference-Header-Content-Length is 5000",
       b'{"inputs": []}', headers={"inference-header-content-length": "5000"}),
    v2("v2 body not JSON", 400, "not valid JSON", b"\x89PNG not json"),
    v2("v2 JSON nested 100000 deep", 400, "not valid JSON", b"[" * 100_000),
    v2_images("v2 truncated PNG as BYTES", 400, "could not decode", img.truncated(img.png())),
    v2_images("v2 unknown output", 400, "unknown output", img.png(), outputs=[{"name": "nope"}]),
    v2("v2 batch over the request limit", 400, "over the 64-item request limit",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [100], "data": ["x"] * 100}]}),
    v2("v2 unknown model", 404, "unknown model 'nope'", {"inputs": []},
       path="/v2/models/nope/infer"),
    v2_images("v2 PNG and JPEG as BYTES", 200, "", img.png(), img.jpeg()),
    # --- issue 13: empty and smuggled batches, finite inputs that overflow -------------------
    v2("v2 empty FP32 batch [0, 3, 64, 64]", 400, "the batch is empty",
       fp32_input([0, 3, 64, 64], data=[])),
    v2("v2 empty BYTES batch [0]", 400, "the batch is empty",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [0], "data": []}]}),
    v2_images("v2 BYTES [1, 100]: 100 images past the cap", 400, "must have shape [N]",
              *[img.one_pixel()] * 100, shape=[1, 100]),
    v2_images("v2 BYTES [2, 40]: 80 images past the cap", 400, "must have shape [N]",
              *[img.one_pixel()] * 80, shape=[2, 40]),
    v2("v2 FP32 1e30 everywhere (JSON)", 422, "NaN or Inf",
       fp32_input(FULL, data=[1e30] * (3 * 64 * 64))),
    v2("v2 FP32 3e38 everywhere (binary)", 422, "NaN or Inf",
       fp32_input(FULL, parameters={"binary_data_size": len(HUGE_TENSOR)}), tail=HUGE_TENSOR),
    v2("v2 FP32 NaN in binary", 400, "NaN or Inf",
       fp32_input(FULL, parameters={"binary_data_size": len(NAN_TENSOR)}), tail=NAN_TENSOR),
    # --- v2 structure ---------------------------------------------------------------------------
    v2("v2 shape with a negative dimension", 400, "negative dimension",
       fp32_input([1, 3, -64, 64], data=[0.0])),
    v2("v2 shape not a list", 400, "'shape' must be a list", fp32_input("1,3,64,64", data=[0.0])),
    v2("v2 shape of floats", 400, "'shape' must be a list", fp32_input([1.0, 3, 64, 64], data=[])),
    v2("v2 shape of booleans", 400, "'shape' must be a list", fp32_input([True], data=[0.0])),
    v2("v2 shape missing", 400, "missing 'shape'",
       {"inputs": [{"name": "input", "datatype": "FP32", "data": [0.0]}]}),
    v2("v2 shape of 2^40 elements", 400, "needs 1099511627776", fp32_input([2**40], data=[0.0])),
    v2("v2 shape [2^31, 2^31, 2^31] in binary", 400, "binary_data_size is 0",
       fp32_input([2**31] * 3, parameters={"binary_data_size": 0})),
    v2("v2 batch 1 with no batch dimension", 400, "no batch dimension", fp32_input([], data=[0.0])),
    v2("v2 datatype in lower case", 400, "unknown datatype 'fp32'",
       {"inputs": [{"name": "input", "datatype": "fp32", "shape": [1], "data": [0.0]}]}),
    v2("v2 datatype missing", 400, "missing 'datatype'",
       {"inputs": [{"name": "input", "shape": [1], "data": [0.0]}]}),
    v2("v2 FP64 input", 400, "must be FP32",
       {"inputs": [{"name": "input", "datatype": "FP64", "shape": FULL,
                    "data": [0.0] * (3 * 64 * 64)}]}),
    v2("v2 input without a name", 400, "missing 'name'",
       {"inputs": [{"datatype": "FP32", "shape": [1], "data": [0.0]}]}),
    v2("v2 input with an empty name", 400, "missing 'name'",
       {"inputs": [{"name": "", "datatype": "FP32", "shape": [1], "data": [0.0]}]}),
    v2("v2 inputs not a list", 400, "non-empty 'inputs'", {"inputs": {"name": "input"}}),
    v2("v2 input not an object", 400, "inputs[0] must be a JSON object", {"inputs": ["input"]}),
    v2("v2 two inputs", 400, "exactly one input",
       {"inputs": [{"name": n, "datatype": "FP32", "shape": [1], "data": [0.0]}
                   for n in ("a", "b")]}),
    v2("v2 the same input twice", 400, "appears more than once",
       {"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [0.0]}] * 2}),
    v2("v2 neither data nor binary_data_size", 400, "neither 'data' nor binary_data_size",
       fp32_input(FULL)),
    v2("v2 both data and binary_data_size", 400, "has both",
       fp32_input([1], data=[0.0], parameters={"binary_data_size": 4}), tail=b"\0" * 4),
    v2("v2 binary_data_size negative", 400, "non-negative integer",
       fp32_input([1], parameters={"binary_data_size": -4}), tail=b"\0" * 4),
    v2("v2 binary_data_size a string", 400, "non-negative integer",
       fp32_input([1], parameters={"binary_data_size": "4"}), tail=b"\0" * 4),
    v2("v2 input parameters not an object", 400, "must be a JSON object",
       fp32_input([1], data=[0.0], parameters=[1])),
    v2("v2 shared memory requested", 400, "shared memory extension is not supported",
       fp32_input([1], parameters={"shared_memory_region": "r"})),
    v2("v2 id not a string", 400, "'id' must be a string", {"id": 7, **fp32_input([1])}),
    v2("v2 binary_data_output 'yes'", 400, "must be true or false",
       {"parameters": {"binary_data_output": "yes"}, **fp32_input([1])}),
    v2("v2 top level a list", 400, "must be a JSON object", [fp32_input([1])]),
    v2("v2 empty body", 400, "not valid JSON", b""),
    v2("v2 header length not a number", 400, "non-negative integer", b"{}",
       headers={"inference-header-content-length": "abc"}),
    v2("v2 header length negative", 400, "non-negative integer", b"{}",
       headers={"inference-header-content-length": "-1"}),
    v2("v2 header length 0", 400, "not valid JSON", b"{}",
       headers={"inference-header-content-length": "0"}),
    v2("v2 a float over FP32's range (1e39)", 400, "out of range for FP32",
       fp32_input([1], data=[1e39])),
    v2("v2 an integer of 400 digits as FP32", 400, "too large for FP32",
       b'{"inputs":[{"name":"input","datatype":"FP32","shape":[1],"data":[1'
       + b"0" * 400 + b"]}]}"),
    v2("v2 INT8 value 300", 400, "out of range for INT8",
       {"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}),
    v2("v2 strings as FP32", 400, "must be numbers", fp32_input([1], data=["0.5"])),
    v2("v2 booleans as FP32", 400, "must be numbers", fp32_input([1], data=[True])),
    v2("v2 BOOL binary byte 2", 400, "0 or 1",
       {"inputs": [{"name": "x", "datatype": "BOOL", "shape": [1],
                    "parameters": {"binary_data_size": 1}}]}, tail=b"\x02"),
    v2("v2 BYTES element a number", 400, "must be strings",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [5]}]}),
    v2("v2 BYTES lone surrogate", 400, "not valid Unicode",
       b'{"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["\\ud800"]}]}'),
    v2_images("v2 random bytes as BYTES", 400, "could not identify", formats.RANDOM),
    v2_images("v2 empty BYTES element", 400, "empty body", b""),
    v2("v2 BYTES binary left over", 400, "more than the 1 elements",
       {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1],
                    "parameters": {"binary_data_size": 2 * len(BYTES_ELEMENT)}}]},
       tail=BYTES_ELEMENT * 2),
    v2("v2 data a dict", 400, "'data' has 1 elements", fp32_input([2], data={"a": 1})),
    v2("v2 outputs not a list", 400, "'outputs' must be a list",
       {"outputs": "logits", **fp32_input([1], data=[0.0])}),
    v2("v2 output without a name", 400, "outputs[0] is missing 'name'",
       {"outputs": [{}], **fp32_input([1], data=[0.0])}),
    v2_images("v2 the same output twice", 400, "appears more than once", img.png(),
              outputs=[{"name": "logits"}, {"name": "logits"}]),
    v2_images("v2 classification k=0", 400, "must be a positive integer", img.png(),
              outputs=[{"name": "logits", "parameters": {"classification": 0}}]),
    v2_images("v2 classification extension, k=2", 200, "", img.png(),
              outputs=[{"name": "logits", "parameters": {"classification": 2}}]),
    v2_images("v2 binary_data 'yes'", 400, "must be true or false", img.png(),
              outputs=[{"name": "logits", "parameters": {"binary_data": "yes"}}]),
    v2_images("v2 mask output of the classifier", 400, "unknown output", img.png(),
              outputs=[{"name": "mask"}]),
    v2_images("v2 version 99", 404, "no version 99", img.png(),
              path=f"/v2/models/{CLASSIFIER}/versions/99/infer"),
    v2_images("v2 version 'abc'", 422, "version", img.png(),
              path=f"/v2/models/{CLASSIFIER}/versions/abc/infer"),
    # --- v2 that must work ---------------------------------------------------------------------
    v2("v2 FP32 zeros, nested JSON", 200, "",
       fp32_input(FULL, data=[[[[0.0] * 64] * 64] * 3])),
    v2_images("v2 version 1 path", 200, "", img.png(),
              path=f"/v2/models/{CLASSIFIER}/versions/1/infer"),
    v2_images("v2 segmenter mask and a map, binary", 200, "", img.png(),
              path=f"/v2/models/{SEGMENTER}/infer",
              parameters={"binary_data_output": True}, outputs=[{"name": "mask"}]),
    v2_images("v2 64 images (the cap)", 200, "", *[img.one_pixel()] * 64),
    v2_images("v2 65 images", 400, "over the 64-item request limit", *[img.one_pixel()] * 65),
]
# fmt: on
