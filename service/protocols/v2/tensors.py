"""Tensor data of the KServe v2 protocol: the datatypes, JSON ``data`` lists, and raw bytes.

Two encodings carry the same tensor. JSON lists are simple but large and slow to parse; Triton's
binary tensor data extension, which ``tritonclient.http`` uses by default, appends raw bytes after
the JSON header instead. Binary layout, per the spec: little-endian, row-major, no padding; BOOL is
one byte (0 or 1); a BYTES element is a 4-byte little-endian unsigned length then that many bytes.

This module turns one tensor's data into values and back; the request/response structure around
it lives in :mod:`service.protocols.v2.codec`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np

from service.errors import BadRequest

# v2 datatype name -> numpy dtype. Explicitly little-endian, because that is the wire order.
# BYTES maps to object: its elements are Python ``bytes`` of varying length.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})
INTEGER_DATATYPES = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
)
_BYTES_LENGTH_PREFIX = struct.Struct("<I")


def datatype_for(dtype: np.dtype) -> str:
    """The v2 datatype name of a numeric numpy dtype, so callers never keep a second table."""
    for name, candidate in DATATYPES.items():
        if name != "BYTES" and candidate == np.dtype(dtype):
            return name
    raise ValueError(f"numpy dtype {np.dtype(dtype)} has no KServe v2 datatype")


def batch_size(name: str, datatype: str, shape: tuple[int, ...], max_items: int) -> int:
    """The number of items (images) an input carries, refused (400) unless it is 1 to
    ``max_items``. Every protocol front end (HTTP v2, gRPC) calls this before any work.

    The batch is ``shape[0]`` and nothing else runs, so every other dimension must be fixed by
    the input itself: a BYTES input is one encoded image per element and must be ``[N]``
    (``[1, 100]`` would smuggle 100 images past the per-request cap); a numeric one needs a
    batch dimension. An empty batch is a client mistake, not an empty answer.
    """
    if datatype == "BYTES" and len(shape) != 1:
        raise BadRequest(
            f"input '{name}': a BYTES input holds one encoded image per element and must have "
            f"shape [N]; got {list(shape)}"
        )
    if not shape:
        raise BadRequest(f"input '{name}': shape [] has no batch dimension; send [N, ...]")
    if shape[0] == 0:
        raise BadRequest(
            f"input '{name}': the batch is empty (shape {list(shape)}); send at least one item"
        )
    if shape[0] > max_items:
        raise BadRequest(
            f"input '{name}': batch of {shape[0]} is over the {max_items}-item request limit"
        )
    return shape[0]


def decode_binary_tensor(
    name: str, datatype: str, shape: tuple[int, ...], chunk: bytes | memoryview
) -> np.ndarray | list[bytes]:
    """Turn one input's ``binary_data_size`` bytes into an array (or a list for BYTES).

    Numeric arrays are copied out of the request body so they are writable and own their memory
    (``torch.from_numpy`` warns on read-only buffers and the body can then be freed).
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _split_bytes_elements(name, chunk, count)
    dtype = DATATYPES[datatype]
    expected = count * dtype.itemsize
    if len(chunk) != expected:
        raise BadRequest(
            f"input '{name}': binary_data_size is {len(chunk)} bytes but shape {list(shape)} of "
            f"{datatype} needs {expected} ({count} elements x {dtype.itemsize} bytes)"
        )
    if datatype == "BOOL":
        raw = np.frombuffer(chunk, dtype=np.uint8)
        if raw.size and int(raw.max()) > 1:
            raise BadRequest(
                f"input '{name}': BOOL binary data must hold one byte per element, 0 or 1; "
                f"found {int(raw.max())}"
            )
        return raw.astype(np.bool_).reshape(shape)
    return np.frombuffer(chunk, dtype=dtype).reshape(shape).copy()


def _split_bytes_elements(name: str, chunk: bytes | memoryview, count: int) -> list[bytes]:
    """Split Triton's length-prefixed BYTES serialisation, checking every length against the
    bytes that are really there (a lying prefix must not read into the next tensor)."""
    elements: list[bytes] = []
    size, offset = len(chunk), 0
    while offset < size:
        if len(elements) == count:
            raise BadRequest(
                f"input '{name}': BYTES binary data holds more than the {count} elements its "
                f"shape needs ({size - offset} bytes left over after element {count - 1})"
            )
        if offset + _BYTES_LENGTH_PREFIX.size > size:
            raise BadRequest(
                f"input '{name}': BYTES element {len(elements)} is truncated: its 4-byte "
                f"little-endian length prefix starts at byte {offset} of {size}"
            )
        (length,) = _BYTES_LENGTH_PREFIX.unpack_from(chunk, offset)
        offset += _BYTES_LENGTH_PREFIX.size
        if offset + length > size:
            raise BadRequest(
                f"input '{name}': BYTES element {len(elements)} declares {length} bytes but only "
                f"{size - offset} remain in its binary_data_size"
            )
        elements.append(bytes(chunk[offset : offset + length]))
        offset += length
    if len(elements) != count:
        raise BadRequest(
            f"input '{name}': BYTES binary data holds {len(elements)} elements but its shape "
            f"needs {count}; each element is a 4-byte little-endian length then its bytes"
        )
    return elements


def _flatten(data: Any) -> list[Any]:
    """Row-major leaves of nested JSON lists, iteratively (no recursion limit to hit)."""
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


_EXPECTED_JSON = {"BOOL": "true/false", "BYTES": "strings", "FLOAT": "numbers", "INT": "integers"}


def _first_mismatch(values: list[Any], accepted: tuple[type, ...]) -> int | None:
    # `type(v) in` rather than isinstance: bool is an int, and must not pass as one.
    return next((i for i, v in enumerate(values) if type(v) not in accepted), None)


def decode_json_tensor(
    name: str, datatype: str, shape: tuple[int, ...], data: Any
) -> np.ndarray | list[bytes]:
    """Turn one input's JSON ``data`` (flat or nested lists) into an array, or bytes for BYTES.

    Element types are checked, not coerced: a float sent as INT32 or a string sent as FP32 is a
    client bug worth reporting, and bool is accepted for BOOL only.
    """
    values = _flatten(data)
    count = math.prod(shape)
    if len(values) != count:
        raise BadRequest(
            f"input '{name}': 'data' has {len(values)} elements but shape {list(shape)} needs "
            f"{count}"
        )
    if datatype == "BYTES":
        kind, accepted = "BYTES", (str,)
    elif datatype == "BOOL":
        kind, accepted = "BOOL", (bool,)
    elif datatype in INTEGER_DATATYPES:
        kind, accepted = "INT", (int,)
    else:
        kind, accepted = "FLOAT", (int, float)
    bad = _first_mismatch(values, accepted)
    if bad is not None:
        shown = repr(values[bad])[:40]
        raise BadRequest(
            f"input '{name}': {datatype} data must be {_EXPECTED_JSON[kind]}; element {bad} is "
            f"{shown} ({type(values[bad]).__name__})"
        )
    if datatype == "BYTES":
        try:
            return [value.encode("utf-8") for value in values]
        except UnicodeEncodeError:
            raise BadRequest(
                f"input '{name}': a BYTES string is not valid Unicode (lone surrogate escape); "
                "send arbitrary bytes as binary data"
            ) from None
    dtype = DATATYPES[datatype]
    if kind == "INT" and values:
        limits = np.iinfo(dtype)
        low, high = min(values), max(values)
        if low < limits.min or high > limits.max:
            raise BadRequest(
                f"input '{name}': value {low if low < limits.min else high} is out of range for "
                f"{datatype} [{limits.min}, {limits.max}]"
            )
    if kind == "FLOAT":
        try:
            wide = np.array(values, dtype=np.float64)
        except OverflowError:
            raise BadRequest(f"input '{name}': an integer is too large for {datatype}") from None
        with np.errstate(over="ignore"):
            array = wide.astype(dtype)
        if not np.isfinite(array).all():
            raise BadRequest(f"input '{name}': a value is out of range for {datatype}")
        return array.reshape(shape)
    return np.array(values, dtype=dtype).reshape(shape)


def encode_binary_tensor(datatype: str, data: np.ndarray) -> bytes:
    """Raw little-endian row-major bytes of an output (BOOL as one 0/1 byte each, BYTES as
    length-prefixed elements)."""
    if datatype == "BYTES":
        return b"".join(_BYTES_LENGTH_PREFIX.pack(len(e)) + e for e in data.ravel().tolist())
    if datatype == "BOOL":
        return np.ascontiguousarray(data, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(data, dtype=DATATYPES[datatype]).tobytes()
