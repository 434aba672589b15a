"""``estrom counts`` piped against a real tailor: one line per window, --json frames, errors."""

from __future__ import annotations

import json

import pytest

from tests.tailor.helpers import marker, send

pytestmark = pytest.mark.integration


def test_piped_counts_print_one_line_per_window(cli, tailor, beater, index):
    tag = marker()
    counts = cli(
        "counts", "--tailor", tailor.url, "-i", index, "--by", "service", "--every", "0.5", f"tag:{tag}"
    )
    assert "counting" in counts.wait_err("counting")
    first = counts.line()  # an empty window: the stream shows time passing
    assert first.endswith(" total=0"), first
    send(beater.url, index, [{"tag": tag, "service": "api"}] * 3 + [{"tag": tag, "service": "web"}])
    while True:
        line = counts.line()
        if not line.endswith(" total=0"):
            break
    t, *rest = line.split(" ")
    assert t.endswith("Z")
    assert rest == ["total=4", "api=3", "web=1"]
    counts.stop()


def test_json_frames_and_limit_exit_0(cli, tailor, index):
    counts = cli(
        "counts", "--tailor", tailor.url, "-i", index, "--json", "--every", "0.2", "--limit", "2", "x:1"
    )
    assert counts.wait() == 0
    frames = [json.loads(line) for line in counts.out_lines]
    assert [f["total"] for f in frames] == [0, 0]
    assert set(frames[0]) == {"t", "total", "by"}


def test_a_refused_query_exits_1_with_the_reason(cli, tailor, index):
    counts = cli("counts", "--tailor", tailor.url, "-i", index, "level:(error")
    assert counts.wait() == 1
    assert any("400 invalid_query" in line for line in counts.err_lines), counts.err_lines
