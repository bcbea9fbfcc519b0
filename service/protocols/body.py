"""Reading request bodies with a cap: the size limit is enforced while streaming, before the
body is in memory, and a declared Content-Length over the limit is refused unread."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from service.errors import BadRequest, InvalidParameter, PayloadTooLarge
from service.imaging import check_content_type

MAX_MULTIPART_FIELDS = 16
OCTET_STREAM = "application/octet-stream"


async def read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {limit}-byte upload limit")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte upload limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def _replay(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def read_images(request: Request, limit: int, max_files: int) -> list[bytes]:
    """The images of a /predict request: a raw image body, or the ``file`` parts of a
    multipart form (several images give several results)."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        if media_type != OCTET_STREAM:  # generic bytes: the content itself is sniffed
            check_content_type(content_type or None)
        return [await read_capped(request, limit)]
    body = await read_capped(request, limit)
    parser = MultiPartParser(
        request.headers, _replay(body), max_files=max_files, max_fields=MAX_MULTIPART_FIELDS,
        max_part_size=limit,
    )  # fmt: skip
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if error.message.startswith("Too many files"):
            raise PayloadTooLarge(f"at most {max_files} files per request") from None
        raise BadRequest(
            f"malformed multipart body ({error.message}); check the boundary and that part "
            "headers (file names included) are of reasonable length"
        ) from None
    parts = form.getlist("file")
    if not parts:
        raise InvalidParameter("multipart body has no 'file' part; send images as file=@image")
    images = []
    for part in parts:
        if not isinstance(part, UploadFile):
            raise InvalidParameter("the 'file' parts must be files, not text fields")
        if part.content_type not in (None, "", OCTET_STREAM):
            check_content_type(part.content_type)  # else the bytes themselves are sniffed
        images.append(await part.read())
        await part.close()
    return images
