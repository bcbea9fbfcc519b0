"""promtool on docker/prometheus: the config, the recording and alert rules, and the alert unit
tests (rules/alerts_test.yml), each also run on a broken copy that must fail."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.docker import tools
from tests.docker.broken import replace_once
from tests.docker.promql import exported_series, series_read_by

RULE_FILES = ["recording.yml", "alerts.yml"]
AVERAGED_DEPTH = "(avg_over_time(attnserve_queue_depth[1m]))"


def promtool(*args: str | Path):
    return tools.run([tools.require(tools.promtool(), "promtool (Debian prometheus)"), *args])


def copy_of_prometheus_dir(tmp_path: Path) -> Path:
    target = tmp_path / "prometheus"
    shutil.copytree(tools.PROMETHEUS_DIR, target)
    return target


def break_file(path: Path, old: str, new: str) -> None:
    path.write_text(replace_once(path.read_text(), old, new))


def test_config_is_valid_and_loads_both_rule_files() -> None:
    result = promtool("check", "config", tools.PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, tools.output(result)
    assert "2 rule files found" in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("prometheus.yml", "scrape_interval: 5s", "scrape_interval: 5 seconds"),
        ("prometheus.yml", "rules/alerts.yml", "rules/alert.yml"),
        ("rules/alerts.yml", "for: 2m", "for: two minutes"),
    ],
    ids=["bad-duration", "missing-rule-file", "broken-rule-file"],
)
def test_check_config_rejects_a_broken_copy(tmp_path: Path, file: str, old: str, new: str) -> None:
    folder = copy_of_prometheus_dir(tmp_path)
    break_file(folder / file, old, new)
    result = promtool("check", "config", folder / "prometheus.yml")
    assert result.returncode != 0, tools.output(result)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", *(tools.RULES_DIR / name for name in RULE_FILES))
    assert result.returncode == 0, tools.output(result)


@pytest.mark.parametrize(
    ("file", "old", "new"),
    [
        ("recording.yml", "status) (rate(attnserve_requests_total[1m]))", "status) (rate("),
        ("alerts.yml", "expr: attnserve_model_ready == 0", "expr: attnserve_model_ready === 0"),
        ("recording.yml", "record: model:attnserve_requests:rate1m", "record: model attnserve"),
    ],
    ids=["unbalanced-paren", "bad-operator", "invalid-record-name"],
)
def test_check_rules_rejects_a_broken_copy(tmp_path: Path, file: str, old: str, new: str) -> None:
    folder = copy_of_prometheus_dir(tmp_path)
    break_file(folder / "rules" / file, old, new)
    result = promtool("check", "rules", folder / "rules" / file)
    assert result.returncode != 0, tools.output(result)


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", tools.RULES_DIR / "alerts_test.yml")
    assert result.returncode == 0, tools.output(result)
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "failing_test"),
    [
        ("alerts.yml", "saturation_ratio > 0.8", "saturation_ratio > 0.95", "queue kept over"),
        ("alerts.yml", "ratio_rate5m > 0.05", "ratio_rate5m > 0.2", "5xx ratio"),
        ("alerts.yml", "p99_rate5m > 0.5", "p99_rate5m > 0.0", "p99 latency"),
        ("recording.yml", 'status=~"5.."}[5m]', 'status=~"[45].."}[5m]', "5xx ratio"),
        ("recording.yml", AVERAGED_DEPTH, "(attnserve_queue_depth)", "queue kept over"),
    ],
    ids=["queue-threshold", "error-threshold", "slo-threshold", "4xx-as-errors", "no-averaging"],
)
def test_alert_unit_tests_catch_a_changed_rule(
    tmp_path: Path, file: str, old: str, new: str, failing_test: str
) -> None:
    """Each edit changes when an alert fires; the unit tests must notice."""
    folder = copy_of_prometheus_dir(tmp_path)
    break_file(folder / "rules" / file, old, new)
    result = promtool("test", "rules", folder / "rules" / "alerts_test.yml")
    assert result.returncode != 0, tools.output(result)
    assert "FAILED" in result.stdout + result.stderr
    assert failing_test in result.stdout + result.stderr


def rule_expressions(text: str) -> list[str]:
    """Every ``expr`` of a rules file, folded (``>-``) blocks included, without a YAML parser."""
    expressions, lines = [], text.splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"(\s*)expr:\s*(.*)$", line)
        if not match:
            continue
        indent, value = len(match.group(1)), match.group(2)
        if value in (">-", ">", "|", "|-"):
            block = []
            for following in lines[index + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) <= indent:
                    break
                block.append(following.strip())
            value = " ".join(block)
        expressions.append(value)
    return expressions


def test_rules_read_only_series_that_attnserve_exports() -> None:
    exported = exported_series() | {"up"}
    for name in RULE_FILES:
        expressions = rule_expressions((tools.RULES_DIR / name).read_text())
        assert expressions, name
        for expr in expressions:
            assert series_read_by(expr) <= exported, f"{name}: {expr}"


def test_series_check_notices_a_misspelt_metric() -> None:
    assert not series_read_by("rate(attnserve_request_total[1m])") <= exported_series()
    assert series_read_by("model:attnserve_requests:rate1m") == set()
