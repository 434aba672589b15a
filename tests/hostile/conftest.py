"""Hostile-input runs: a deterministic hypothesis profile and a count of inputs tried.

The ``hostile`` profile is derandomized everywhere (CI and local runs try
the same inputs, so a failure reproduces), has no deadline (each example is
a real request) and a bounded number of examples per test, which
``ESTROM_HOSTILE_EXAMPLES`` raises for a longer local hunt. It is used by
the tests here only, through ``hostile_settings``; other suites keep theirs.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings

settings.register_profile(
    "hostile",
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("ESTROM_HOSTILE_EXAMPLES", "120")),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    database=None,
)

#: Inputs tried per parser in this run, printed at the end of the session.
TRIED: Counter[str] = Counter()


def hostile_settings() -> settings:
    return settings(settings.get_profile("hostile"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TRIED:
        terminalreporter.section("hostile inputs tried")
        for parser, count in sorted(TRIED.items()):
            terminalreporter.write_line(f"{parser}: {count}")
        terminalreporter.write_line(f"total: {sum(TRIED.values())}")
