"""The one HTTP/1.1 load client, on raw asyncio streams: for the benchmark's load loops
(:mod:`bench.loadgen`) and the reliability tests' (``tests/reliability/load.py``).

On a 2-core machine the client competes with the server for the same cores (httpx spends more
CPU per request than the service under test), so it does the minimum: requests are pre-encoded
bytes, answers are read by Content-Length (or chunked) without parsing the body, connections
are kept alive. It only ever connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HOST = "127.0.0.1"
#: uvicorn closes a keep-alive connection idle for 5 s; one idle for longer than this is
#: reopened, so a request never races the server's close (which no server can answer).
IDLE_REOPEN_S = 3.0
HEADER_END = b"\r\n\r\n"


def build_request(
    method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@dataclass
class Reply:
    status: int  # 0 for a transport failure (see ``failure``)
    headers: dict[str, str] = field(default_factory=dict)  # names lower-cased
    body: bytes = b""
    seconds: float = 0.0
    failure: str | None = None  # "hung", "ConnectionResetError", ... when no answer came back


class Connection:
    """One keep-alive connection; reconnects after an error, ``Connection: close``, or an idle
    spell long enough for the server to have dropped it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def exchange(self, raw: bytes) -> tuple[int, bytes]:
        """Send one request (bytes from :func:`build_request`): its status and body."""
        status, _, body = await self.answer(raw)
        return status, body

    async def answer(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """Send one request: status, headers (names lower-cased) and body."""
        if self.writer is not None and time.monotonic() - self.last_used > IDLE_REOPEN_S:
            self.close()
        reused = self.writer is not None
        try:
            return await self._exchange(raw)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as error:
            partial = getattr(error, "partial", b"")
            if not reused or partial:  # a fresh connection failing, or a response cut short
                raise
            self.close()  # the server closed the idle connection as we reused it: once more
            return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(HEADER_END)
        status_line, *header_lines = head[: -len(HEADER_END)].decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._read_chunked()
        else:
            body = await self.reader.read()
            headers["connection"] = "close"
        self.last_used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, body

    async def _read_chunked(self) -> bytes:
        assert self.reader is not None
        parts = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    @property
    def is_open(self) -> bool:
        return self.writer is not None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    """Keep-alive connections to one server, opened on demand and reused when idle; every
    answer (or transport failure) comes back as a :class:`Reply`, never as an exception."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.hostname != HOST:
            raise ValueError(f"the load client only talks to {HOST}, not {url}")
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self._idle: list[Connection] = []

    async def send(self, raw: bytes) -> Reply:
        started = time.perf_counter()
        connection = self._idle.pop() if self._idle else Connection(self.port)
        try:
            status, headers, body = await asyncio.wait_for(connection.answer(raw), self.timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            connection.close()
            return Reply(0, seconds=time.perf_counter() - started, failure="hung")
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            connection.close()
            return Reply(0, seconds=time.perf_counter() - started, failure=type(e).__name__)
        if connection.writer is not None:
            self._idle.append(connection)
        return Reply(status, headers, body, time.perf_counter() - started)

    async def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
