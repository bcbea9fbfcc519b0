"""Running the app under uvicorn with a graceful drain on SIGTERM/SIGINT, and the gRPC
server (``ATTNSERVE_GRPC_PORT``) in the same event loop, started and stopped with it.

The first signal turns readiness to 503 and refuses new inference requests at once, over both
protocols; the process keeps listening until every admitted request is answered (or
``drain_timeout_s`` passes: one budget for the whole drain), then gRPC and uvicorn stop and
the lifespan closes the models. Exit code 0. HTTP is uvicorn's httptools protocol with
request-head limits (:mod:`service.http.protocol`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from types import FrameType

import grpc
import uvicorn

from models.repository.layout import DEMO_REPOSITORY, model_names
from service.http.app import create_app
from service.http.protocol import LimitedHttpToolsProtocol
from service.logs import configure_logging
from service.settings import Settings
from service.state import AppState

log = logging.getLogger("attnserve")

DRAIN_POLL_S = 0.02


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState) -> None:
        super().__init__(config)
        self.state = state
        self.grpc_server: grpc.aio.Server | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """gRPC first: a port it cannot bind stops the process with one line, before the models
        start loading (until they are, its calls answer UNAVAILABLE, as HTTP's answer 503)."""
        if self.state.settings.grpc_port:
            # imported only when on: its inference.* protobuf names would clash with another
            # copy of them (tritonclient.grpc's) in a process that merely imports this module
            from service.protocols.grpc.server import start_grpc_server

            self.grpc_server = await start_grpc_server(self.state)
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """gRPC first: its admitted calls finish (the drain waited for them) before uvicorn and
        then the lifespan close the models."""
        if self.grpc_server is not None:
            await self.grpc_server.stop(self.state.settings.drain_timeout_s)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.state.draining:  # a second signal: stop now
            super().handle_exit(sig, frame)
            return
        self.state.begin_drain()
        log.info("signal %d: draining (readiness 503), then exiting", sig)
        threading.Thread(target=self._exit_when_drained, daemon=True).start()

    def _exit_when_drained(self) -> None:
        """Then a normal stop: not re-raising the signal, so the exit code is 0.

        One budget in total: what the in-flight requests leave of ``drain_timeout_s`` is all
        uvicorn's graceful shutdown may wait, not another full timeout. A request still
        unanswered at its end (an upload still arriving) is cancelled and answered with a JSON
        503 (:class:`service.http.errors.UnansweredErrors`)."""
        deadline = time.monotonic() + self.state.settings.drain_timeout_s
        while self.state.inflight > 0 and time.monotonic() < deadline:
            time.sleep(DRAIN_POLL_S)
        self.config.timeout_graceful_shutdown = max(deadline - time.monotonic(), 0.0)
        self.should_exit = True


def resolve_repo(settings: Settings) -> Path:
    """The configured repository, or the demo repository (built first if it is absent)."""
    if settings.repo is not None:
        return settings.repo
    from models.demo.build import CLASSIFIER_NAME, SEGMENTER_NAME, build_demo_repository

    if not {CLASSIFIER_NAME, SEGMENTER_NAME} <= set(model_names(DEMO_REPOSITORY)):
        log.warning("no --repo given and no demo repository: building it in %s", DEMO_REPOSITORY)
        build_demo_repository(DEMO_REPOSITORY)
    return DEMO_REPOSITORY


def serve(settings: Settings) -> None:
    configure_logging(settings.log_level, json_lines=settings.log_format == "json")
    app = create_app(settings, resolve_repo(settings))
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level,
        log_config=None, access_log=False,  # service.http.context logs each request
        timeout_graceful_shutdown=settings.drain_timeout_s, http=LimitedHttpToolsProtocol,
    )  # fmt: skip
    DrainingServer(config, app.state.attnserve).run()
