"""A small HTTP/1.1 client on raw asyncio streams, for load generation against 127.0.0.1.

httpx spends more CPU per request than the service under test on this 2-core machine, so
the load it could offer would be the client's limit, not the server's. This client does the
minimum (keep-alive connections, Content-Length bodies) and reports transport failures as
values, so that a reset or a hang is counted rather than raised.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HEADER_END = b"\r\n\r\n"
#: uvicorn closes a keep-alive connection idle for 5 s; one idle for longer than this is not
#: reused, so a request never races the server's close (which no server can answer).
MAX_IDLE_S = 3.0


def read_json_answer(sock: socket.socket) -> bytes:
    """A whole HTTP answer from a blocking socket: headers and a JSON body (or the server's
    close, whichever comes first)."""
    answer = b""
    while HEADER_END not in answer or not answer.endswith(b"}"):
        data = sock.recv(65536)
        if not data:
            break
        answer += data
    return answer


@dataclass
class Reply:
    status: int  # 0 for a transport failure (see ``failure``)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    failure: str | None = None  # "reset", "hung", ... when no HTTP answer came back


def build_request(
    method: str, target: str, body: bytes = b"", headers: dict | None = None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(HEADER_END)
    status_line, *header_lines = head[: -len(HEADER_END)].decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


class Pool:
    """Keep-alive connections to one server, opened on demand and reused when idle."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.timeout_s = timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.opened = 0

    async def send(self, raw: bytes) -> Reply:
        """One request (bytes from :func:`build_request`); never raises for transport errors."""
        started = time.perf_counter()
        reader, writer = await self._connection()
        try:
            writer.write(raw)
            status, headers, body = await asyncio.wait_for(read_reply(reader), self.timeout_s)
        except asyncio.TimeoutError:
            writer.close()
            return Reply(0, seconds=time.perf_counter() - started, failure="hung")
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            writer.close()
            return Reply(0, seconds=time.perf_counter() - started, failure=type(error).__name__)
        if headers.get("connection", "").lower() == "close":
            writer.close()
        else:
            self._idle.append((reader, writer, time.monotonic()))
        return Reply(status, headers, body, time.perf_counter() - started)

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """The most recently used idle connection still fresh and open, else a new one."""
        while self._idle:
            reader, writer, since = self._idle.pop()
            if time.monotonic() - since < MAX_IDLE_S and not reader.at_eof():
                return reader, writer
            writer.close()
        self.opened += 1
        return await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        for _, writer, _ in self._idle:
            writer.close()
        self._idle.clear()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
