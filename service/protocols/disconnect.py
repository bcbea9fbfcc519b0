"""Knowing that a client went away, from one ``receive()`` that waits for it, not from polls.

Starlette's ``Request.is_disconnected`` answers by calling ``receive()`` under a cancelled
scope, so every answer is one ASGI round trip; the engine asks every 50 ms for each image it
holds (queued, decoding, waiting for memory), so a full queue cost hundreds of those a second.
Once a request's body has been read, the next message the server can send is
``http.disconnect``: one task that waits for it turns every later question into reading a
flag. The engine keeps asking at its own pace; asking is now free.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from starlette.requests import Request


class DisconnectWatch:
    """``async with`` it once the body is read; :meth:`is_disconnected` is then a flag.

    Before it is entered (while the body is still arriving) the answer is False: an upload
    that breaks off fails in the body reader, which says why. Leaving it stops the listener
    and leaves the answer as it was: ending a request is not its client leaving (a flag set on
    that cancellation made every later wait, such as a mask's memory reservation, a 499).
    """

    def __init__(self, request: Request) -> None:
        self._receive = request.receive
        self._gone = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None

    async def is_disconnected(self) -> bool:
        return self._gone.is_set()

    async def _listen(self) -> None:
        try:
            while (await self._receive())["type"] != "http.disconnect":
                pass  # an empty trailing body message; the next one is the disconnect
        except Exception:
            self._gone.set()  # a receive that fails: the connection is gone
            raise
        self._gone.set()

    async def __aenter__(self) -> DisconnectWatch:
        self._listener = asyncio.create_task(self._listen(), name="disconnect-watch")
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._listener is not None
        self._listener.cancel()
        # wait, not await: an outer cancellation still propagates, the listener's own does not
        await asyncio.wait((self._listener,))
        if not self._listener.cancelled():
            self._listener.exception()  # retrieved: a broken receive only means "gone"
