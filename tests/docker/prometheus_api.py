"""Prometheus's HTTP API as the tests read it: instant queries, scrape targets, loaded rules
and firing alerts. Every wait is a bounded poll that says what it last saw."""

from __future__ import annotations

import time

import httpx

API_TIMEOUT_S = 5.0
POLL_S = 1.0


def query(prometheus: str, promql: str) -> list[dict]:
    response = httpx.get(
        f"{prometheus}/api/v1/query", params={"query": promql}, timeout=API_TIMEOUT_S
    )
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def targets(prometheus: str, job: str) -> list[dict]:
    """The active scrape targets of ``job``: labels, ``health`` and ``lastError`` each."""
    response = httpx.get(f"{prometheus}/api/v1/targets", timeout=API_TIMEOUT_S)
    active = response.json()["data"]["activeTargets"]
    return [target for target in active if target["labels"].get("job") == job]


def wait_ready(prometheus: str, timeout_s: float) -> None:
    """Until ``/-/ready`` answers 200: a Prometheus that is still starting answers its API
    with a plain-text 503, or its published port resets the connection."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            seen: object = httpx.get(f"{prometheus}/-/ready", timeout=API_TIMEOUT_S).status_code
        except httpx.TransportError as error:
            seen = error
        if seen == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"prometheus at {prometheus} never ready, last saw {seen!r}")
        time.sleep(POLL_S)


def wait_for_targets_up(prometheus: str, job: str, count: int, timeout_s: float) -> list[dict]:
    """``count`` targets of ``job``, every one scraped and ``up``; an AssertionError naming
    what Prometheus saw (health, last error) if that does not happen within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    wait_ready(prometheus, timeout_s)
    while True:
        found = targets(prometheus, job)
        if len(found) == count and all(target["health"] == "up" for target in found):
            return found
        if time.monotonic() > deadline:
            seen = [(t["labels"].get("instance"), t["health"], t["lastError"]) for t in found]
            raise AssertionError(f"{job}: wanted {count} targets up, saw {seen}")
        time.sleep(POLL_S)


def rules(prometheus: str) -> list[dict]:
    response = httpx.get(f"{prometheus}/api/v1/rules", timeout=API_TIMEOUT_S)
    return [rule for group in response.json()["data"]["groups"] for rule in group["rules"]]


def firing(prometheus: str, alert: str) -> list[dict]:
    return query(prometheus, f'ALERTS{{alertname="{alert}", alertstate="firing"}}')


def empty_queries(prometheus: str, expressions: dict[str, str]) -> dict[str, str]:
    """The expressions (name -> PromQL) that return no series at all."""
    return {name: expr for name, expr in expressions.items() if not query(prometheus, expr)}
