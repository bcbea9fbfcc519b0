"""The batch a v2 input carries, checked where every front end (HTTP, gRPC) can call it."""

from __future__ import annotations

import pytest

from service.errors import BadRequest
from service.protocols.v2.tensors import batch_size

LIMIT = 64


@pytest.mark.parametrize(
    ("datatype", "shape", "message"),
    [
        # issue 13, 1: an empty batch reached torch.stack and gave a 500
        ("FP32", (0, 3, 64, 64), "the batch is empty"),
        ("BYTES", (0,), "the batch is empty"),
        # issue 13, 2: only shape[0] was checked, so [1, 100] ran 100 images
        ("BYTES", (1, 100), "must have shape [N]"),
        ("BYTES", (2, 40), "must have shape [N]"),
        ("BYTES", (), "must have shape [N]"),
        ("FP32", (), "no batch dimension"),
        ("FP32", (65, 3, 64, 64), "over the 64-item request limit"),
        ("BYTES", (65,), "over the 64-item request limit"),
    ],
)
def test_batches_that_are_empty_smuggled_or_too_large_are_400(
    datatype: str, shape: tuple[int, ...], message: str
) -> None:
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        batch_size("x", datatype, shape, LIMIT)


@pytest.mark.parametrize(("datatype", "shape"), [("BYTES", (64,)), ("FP32", (2, 3, 8, 8))])
def test_a_valid_batch_is_its_first_dimension(datatype: str, shape: tuple[int, ...]) -> None:
    assert batch_size("x", datatype, shape, LIMIT) == shape[0]
