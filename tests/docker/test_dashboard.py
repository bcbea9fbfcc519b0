"""The Grafana dashboard: every panel's PromQL parses (promtool check rules on the expressions,
Grafana's variables substituted), it reads only series attnserve exports, it covers what the
service promises to show, and the JSON type-checks against @grafana/schema (tsc)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.docker import tools
from tests.docker.broken import broken_copy
from tests.docker.dashboard import expressions, panels
from tests.docker.promql import exported_series, series_read_by

DATASOURCE = tools.DOCKER / "grafana" / "provisioning" / "datasources" / "prometheus.yml"


def check_as_rules(dashboard_file: Path, tmp_path: Path):
    """The expressions as recording rules (JSON is YAML), through ``promtool check rules``."""
    exprs = expressions(json.loads(dashboard_file.read_text()))
    rules = [
        {"record": f"dashboard:panel_{key.replace('/', '_')}", "expr": expr}
        for key, expr in exprs.items()
    ]
    rules_file = tmp_path / "dashboard-rules.yml"
    rules_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    binary = tools.require(tools.promtool(), "promtool (Debian prometheus)")
    return tools.run([binary, "check", "rules", rules_file]), len(rules)


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    result, count = check_as_rules(tools.DASHBOARD, tmp_path)
    assert result.returncode == 0, tools.output(result)
    assert f"SUCCESS: {count} rules found" in result.stdout
    assert count >= 15


def test_promql_check_rejects_a_broken_panel(tmp_path: Path) -> None:
    old, new = "sum by (model, status) (", "sum by (model, status ("
    broken = broken_copy(tools.DASHBOARD, tmp_path / "attnserve.json", old, new)
    result, _ = check_as_rules(broken, tmp_path)
    assert result.returncode != 0, tools.output(result)


def test_unknown_variables_are_refused() -> None:
    dashboard = {"panels": [{"id": 1, "targets": [{"refId": "A", "expr": "up{i=~'$instance'}"}]}]}
    with pytest.raises(AssertionError, match=r"unknown variable \$instance"):
        expressions(dashboard)


def test_panels_read_only_exported_series_and_cover_every_metric() -> None:
    exprs = expressions(json.loads(tools.DASHBOARD.read_text()))
    read = set()
    for key, expr in exprs.items():
        assert series_read_by(expr) <= exported_series(), f"panel {key}: {expr}"
        read |= series_read_by(expr)
    shown = {re.sub(r"_(bucket|sum|count)$", "", name) for name in read}
    assert shown == {re.sub(r"_(bucket|sum|count)$", "", name) for name in exported_series()}


def test_panels_use_the_provisioned_datasource() -> None:
    uid = re.search(r"^\s*uid:\s*(\S+)", DATASOURCE.read_text(), re.MULTILINE).group(1)
    dashboard = json.loads(tools.DASHBOARD.read_text())
    for panel in panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid, panel["title"]
            assert all(t["datasource"]["uid"] == uid for t in panel["targets"]), panel["title"]
    ids = [panel["id"] for panel in panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def type_check(schema_check_dir: Path):
    binary = tools.require(tools.tsc(), "tsc and @grafana/schema (npm ci)")
    return tools.run([binary, "-p", schema_check_dir], cwd=schema_check_dir)


def test_dashboard_matches_the_grafana_schema() -> None:
    result = type_check(tools.SCHEMA_CHECK_DIR)
    assert result.returncode == 0, tools.output(result)


def _first_panel(dashboard: dict, kind: str) -> dict:
    return next(panel for panel in panels(dashboard["panels"]) if panel["type"] == kind)


def _string_version(dashboard: dict) -> None:
    dashboard["schemaVersion"] = str(dashboard["schemaVersion"])


def _panel_without_type(dashboard: dict) -> None:
    del _first_panel(dashboard, "timeseries")["type"]


def _steps_as_object(dashboard: dict) -> None:
    thresholds = next(
        panel["fieldConfig"]["defaults"]["thresholds"]
        for panel in panels(dashboard["panels"])
        if "thresholds" in panel.get("fieldConfig", {}).get("defaults", {})
    )
    thresholds["steps"] = {"first": thresholds["steps"][0]}


@pytest.mark.parametrize(
    ("breakage", "error"),
    [
        (_string_version, "schemaVersion"),
        (_panel_without_type, "type"),
        (_steps_as_object, "steps"),
    ],
    ids=["string-for-number", "panel-without-type", "object-for-array"],
)
def test_schema_check_rejects_a_broken_copy(tmp_path: Path, breakage, error: str) -> None:
    """The same check on a copy: the .ts file imports ``../dashboards/attnserve.json``."""
    tools.require(tools.tsc(), "tsc and @grafana/schema (npm ci)")
    check_dir = tmp_path / "schema-check"
    check_dir.mkdir()
    for name in ("tsconfig.json", "package.json", "check-dashboard.ts"):
        shutil.copy(tools.SCHEMA_CHECK_DIR / name, check_dir / name)
    os.symlink(tools.SCHEMA_CHECK_DIR / "node_modules", check_dir / "node_modules")
    dashboard = json.loads(tools.DASHBOARD.read_text())
    breakage(dashboard)
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "attnserve.json").write_text(json.dumps(dashboard, indent=2))
    result = type_check(check_dir)
    assert result.returncode != 0, tools.output(result)
    assert "error TS2322" in result.stdout and error in result.stdout, result.stdout
