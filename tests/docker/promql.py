"""PromQL helpers shared by the rule and dashboard tests: which attnserve series an expression
reads, and what the service really exports."""

from __future__ import annotations

import re

from service.metrics import Metrics

#: a raw attnserve series name, not part of a level:metric:operation recording-rule name
SERIES_NAME = re.compile(r"(?<![\w:])attnserve_\w+(?![\w:])")
SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}


def exported_series() -> set[str]:
    """Every series name attnserve's /metrics can carry, from its own registry."""
    names = set()
    for family in Metrics().registry.collect():
        names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    return names


def series_read_by(expr: str) -> set[str]:
    return set(SERIES_NAME.findall(expr))
