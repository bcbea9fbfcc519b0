"""The reliability run's summary: each test records its figures in one session-wide table,
printed after the run (``pytest_terminal_summary``) so that CI logs show what was held."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

#: Management key of the servers these tests start (loopback only).
API_KEY = "reliability-key-9c1e"


@dataclass
class Summary:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (area, figure, value)

    def add(self, area: str, figure: str, value: object) -> None:
        self.rows.append((area, figure, str(value)))

    def report(self, area: str, rows: list[tuple[str, str]]) -> None:
        """Print a test's figures now (so a failing run still shows them) and keep them for
        the table at the end."""
        print(f"\n{area}")
        for figure, value in rows:
            print(f"  {figure:<38} {value}")
            self.add(area, figure, value)

    def render(self) -> list[str]:
        widths = [max(len(row[i]) for row in [("area", "figure", "value"), *self.rows])
                  for i in range(3)]  # fmt: skip
        lines = []
        for row in [("area", "figure", "value"), tuple("-" * w for w in widths), *self.rows]:
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
        return lines


SUMMARY = Summary()


@pytest.fixture(scope="session")
def summary() -> Summary:
    return SUMMARY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARY.rows:
        return
    terminalreporter.section("attnserve reliability summary")
    for line in SUMMARY.render():
        terminalreporter.write_line(line)
