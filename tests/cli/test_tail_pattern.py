"""``estrom tail -i '<pattern>'``: one command follows every index the pattern covers."""

from __future__ import annotations

import json

import pytest

from tests.tailor.helpers import send

pytestmark = pytest.mark.integration


def test_tail_on_a_pattern_follows_every_daily_index_with_its_own_index(cli, tailor, beater, index):
    tail = cli(
        "tail", "--tailor", tailor.url, "-i", f"{index}-logs-*", "--json", "--limit", "2", "level:error"
    )
    tail.wait_err("following")
    send(beater.url, f"{index}-logs-2026.12.01", [{"level": "error", "n": 1}])
    send(beater.url, f"{index}-other", [{"level": "error", "n": 2}])
    send(beater.url, f"{index}-logs-2026.12.02", [{"level": "error", "n": 3}])
    assert tail.wait() == 0
    assert [json.loads(line) for line in tail.out_lines] == [
        {"_index": f"{index}-logs-2026.12.01", "_source": {"level": "error", "n": 1}},
        {"_index": f"{index}-logs-2026.12.02", "_source": {"level": "error", "n": 3}},
    ]


def test_tail_on_a_bad_target_says_why(cli, tailor, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", f"{index}-a,,b", "x")
    assert tail.wait() != 0
    assert any("empty segment" in line for line in tail.err_lines)
