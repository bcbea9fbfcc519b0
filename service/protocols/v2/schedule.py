"""Triton's ``schedule_policy`` extension: a request's ``priority`` and ``timeout`` parameters,
read the same way from an HTTP v2 body's ``parameters`` and a gRPC request's ``parameters`` map
(``tritonclient`` sends both as integers: JSON numbers, or ``int64_param``/``uint64_param``).

``priority``: 0 (or absent) for the model's ``default_priority_level``, else 1 (the highest) to
its ``priority_levels``; the range is the engine's to check (:meth:`Pipeline.job`), since it
depends on the model. ``timeout``: microseconds, 0 (or absent) for none; it is combined with
the protocol's other deadline sources, the tightest winning, and the configured
``timeout_ms`` still caps them all.
"""

from __future__ import annotations

from typing import Any

from service.errors import BadRequest

US_PER_MS = 1000


def _non_negative_int(parameters: dict[str, Any], name: str, meaning: str) -> int:
    value = parameters.get(name, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"parameter '{name}' is {meaning} (a non-negative integer), got {value!r}")
    return value


def priority_of(parameters: dict[str, Any]) -> int:
    """The request's priority: 0 for the model's default level."""
    return _non_negative_int(parameters, "priority", "the priority level, 1 the highest")


def timeout_ms_of(parameters: dict[str, Any]) -> float | None:
    """The request's ``timeout`` in milliseconds, or None when it sets none."""
    timeout_us = _non_negative_int(parameters, "timeout", "in microseconds")
    return timeout_us / US_PER_MS if timeout_us else None


def tightest(*limits_ms: float | None) -> float | None:
    """The shortest of the deadlines that are set (None: none is)."""
    chosen = [limit for limit in limits_ms if limit is not None]
    return min(chosen) if chosen else None
