"""Logging and the typed request context: plain text or JSON lines, every line carrying the
request id of the request it belongs to. Request bodies (image bytes) are never logged.

:class:`RequestInfo` is what the HTTP layer knows of the request being served: its id (set by
:mod:`service.http.context`) and the model it runs on (set by the protocol once it knows it),
read back by the access log and the request metrics."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass
class RequestInfo:
    request_id: str = "-"
    model: str | None = None  # the model's name, once the protocol has looked it up


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def request_info() -> RequestInfo:
    """The request this task is serving (outside a request: a fresh one, written to nobody)."""
    return current_request.get() or RequestInfo()


REQUEST_ID_HEADER = "x-request-id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def accept_request_id(header: str | None) -> str:
    """The client's X-Request-ID when it is a sane token, else a fresh one."""
    if header and VALID_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_info().request_id
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in STANDARD_ATTRIBUTES})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str, json_lines: bool) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
