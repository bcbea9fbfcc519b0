"""The Grafana dashboard's PromQL, with Grafana's variables substituted: what the offline
checks (tests/docker/test_dashboard.py) parse and the live compose test evaluates."""

from __future__ import annotations

import re
from collections.abc import Iterator

#: Grafana's built-in interval variables, replaced by what they expand to at 5 s scrapes
BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def panels(items: list[dict]) -> Iterator[dict]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def expressions(dashboard: dict) -> dict[str, str]:
    """``panel id / refId`` -> PromQL, with every Grafana variable substituted (a template
    variable by ``.*``: every value, as the dashboard's "All")."""
    variables = {v["name"]: ".*" for v in dashboard.get("templating", {}).get("list", [])}

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in BUILTINS or name in variables, f"unknown variable ${name}"
        return BUILTINS.get(name) or variables[name]

    found = {}
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            if target.get("expr"):
                found[f"{panel['id']}/{target['refId']}"] = VARIABLE.sub(value, target["expr"])
    return found
