"""uvicorn's HTTP/1.1 protocol (httptools) with the request-head limits that servers set, and a
JSON answer for every request the parser refuses.

uvicorn's httptools protocol has no limits: a 1 MB header or 5,000 headers were accepted, and
httptools buffers a header's value whole before anyone sees it. (uvicorn's h11 protocol caps
only the whole head, with ``h11_max_incomplete_event_size``, answers a plain 400, and is slower,
so it is no answer.) These limits are Apache's and nginx's order of size:

    request line (method, URL, version)  8 KiB    -> 414
    one header line (name and value)     8 KiB    -> 431
    headers                              100      -> 431
    the whole head                       64 KiB   -> 431 (checked as bytes arrive)

A request whose framing breaks (a chunk size of ``zz``, 2^80 or -5) gets a JSON 400 with the
parser's reason instead of uvicorn's plain text; when its handler is already running, the scope
says so (:data:`~service.http.errors.FRAMING_ERROR`), so it is counted as the 400 it was.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from service.http.errors import FRAMING_ERROR, error_body
from service.logs import REQUEST_ID_HEADER, accept_request_id

MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEADER_LINE_BYTES = 8 * 1024
MAX_HEADERS = 100
MAX_HEAD_BYTES = 64 * 1024
LINGER_S = 1.0


class HeadRefused(Exception):
    """A request head over a limit: raised in a parser callback, answered with its status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answered = False  # refused: what still arrives is ignored until the close
        self._in_head = True  # between a message's first byte and its headers' end
        self._head_bytes = 0  # as received, for a head that has not ended yet
        self._parsed_head_bytes = 0  # of its complete header lines
        self._header_count = 0

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # the rest of this connection is not parsed
        super().data_received(data)  # parser errors come back through send_400_response
        if self._in_head and not self._answered:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._answer(_head_too_large(self._head_bytes))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._header_count = True, 0, 0
        self._parsed_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_REQUEST_LINE_BYTES:
            raise HeadRefused(
                414, "uri_too_long", _too_large("URL", len(self.url), MAX_REQUEST_LINE_BYTES)
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_head_bytes += len(name) + len(value) + 4  # ": " and CRLF
        if self._parsed_head_bytes + len(self.url) > MAX_HEAD_BYTES:
            raise _head_too_large(self._parsed_head_bytes + len(self.url))
        if self._header_count > MAX_HEADERS:
            raise HeadRefused(431, "headers_too_large", f"more than {MAX_HEADERS} headers")
        if len(name) + len(value) > MAX_HEADER_LINE_BYTES:
            what = f"header {name[:40].decode('latin-1')!r}"
            size = len(name) + len(value)
            raise HeadRefused(
                431, "headers_too_large", _too_large(what, size, MAX_HEADER_LINE_BYTES)
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this while it handles the parser's error, which names the reason."""
        error = sys.exc_info()[1]
        refused = error.__context__ if error is not None else None
        if isinstance(refused, HeadRefused):
            self._answer(refused)
            return
        reason = f"malformed HTTP request: {error or msg}"
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.scope[FRAMING_ERROR] = reason  # type: ignore[typeddict-unknown-key]
        self._answer(HeadRefused(400, "bad_request", reason))

    def _answer(self, refused: HeadRefused) -> None:
        """Write the error, then a lingering close (as nginx does): stop sending, ignore what
        still arrives for :data:`LINGER_S`, then close. Closing at once, with the client's
        unread bytes still in the socket, resets the connection, and the client can lose the
        answer. A handler already running sees its client gone."""
        self._answered = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        path = self.url.decode("latin-1") if getattr(self, "url", None) else ""
        body = json.dumps(error_body(path, refused.code, refused.message)).encode()
        head = [STATUS_LINE[refused.status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            REQUEST_ID_HEADER.encode() + b": " + accept_request_id(None).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def _head_too_large(size: int) -> HeadRefused:
    return HeadRefused(431, "headers_too_large", _too_large("request head", size, MAX_HEAD_BYTES))


def _too_large(what: str, size: int, limit: int) -> str:
    return f"{what} of {size:,} bytes or more is over the limit of {limit:,} bytes"
