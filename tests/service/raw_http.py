"""Raw HTTP/1.1 over a socket, for what an HTTP client library will not send: broken framing,
bodies cut short, oversized heads, uploads that stall. Loopback only, every read bounded."""

from __future__ import annotations

import select
import socket
from collections.abc import Iterable

HEADER_END = b"\r\n\r\n"
TIMEOUT_S = 30.0


def read_json_answer(sock: socket.socket) -> bytes:
    """A whole HTTP answer from a blocking socket: headers and a JSON body (or the server's
    close, whichever comes first)."""
    answer = b""
    while HEADER_END not in answer or not answer.endswith(b"}"):
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        answer += data
    return answer


def connect(url: str, timeout_s: float = TIMEOUT_S) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout_s)


def send_until_answered(sock: socket.socket, chunks: Iterable[bytes]) -> None:
    """Send ``chunks`` in order, stopping as soon as the server has answered or closed: a
    server that refuses a request early must not need the rest of it."""
    for chunk in chunks:
        if select.select([sock], [], [], 0)[0]:
            return
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            return


def exchange(url: str, head: bytes, chunks: Iterable[bytes] = ()) -> bytes:
    """Send ``head`` and then ``chunks`` (stopping early if the server answers or closes), and
    return the whole answer."""
    with connect(url) as sock:
        send_until_answered(sock, [head, *chunks])
        return read_json_answer(sock)


def pieces(data: bytes, size: int = 16384) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]
