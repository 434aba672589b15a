"""``estrom counts --delay``: the parameter sent, and a window sent again as the command shows it."""

from __future__ import annotations

import io
import urllib.parse
from unittest import mock

from common.config import CliSettings
from estrom_cli.counts import CountAsk, frame_line, run_counts
from estrom_cli.main import build_parser

FIRST = {"t": "2026-12-01T11:09:00Z", "total": 2, "by": {"api": 2}}
NEXT = {"t": "2026-12-01T11:09:01Z", "total": 1, "by": {"web": 1}}
REVISED = {**FIRST, "total": 3, "by": {"api": 3}, "revised": True}


def test_delay_is_sent_as_given():
    ask = CountAsk("logs", "x", None, delay="2s")
    assert urllib.parse.parse_qs(ask.path().partition("?")[2])["delay"] == ["2s"]
    args = build_parser(CliSettings.from_env({})).parse_args(
        ["counts", "-i", "logs", "--delay", "500ms", "x"]
    )
    assert args.delay == "500ms"


def test_a_revised_window_is_a_line_ending_in_revised():
    assert frame_line(REVISED) == "2026-12-01T11:09:00Z total=3 api=3 (revised)"
    assert frame_line(FIRST) == "2026-12-01T11:09:00Z total=2 api=2"


def drawn(frames: list[dict]) -> str:
    out = io.StringIO()
    lines = iter([{"subscription_id": "s"}, *frames])
    with (
        mock.patch("estrom_cli.counts.open_stream", return_value=(mock.Mock(), None)),
        mock.patch("estrom_cli.counts.read_lines", return_value=lines),
    ):
        run_counts(
            "http://t",
            CountAsk("logs", "x", None, by="service"),
            as_json=False,
            redraw=True,
            quiet=True,
            out=out,
        )
    return out.getvalue()


def test_on_a_terminal_a_revision_redraws_the_window_shown_only():
    assert "(revised)" in drawn([FIRST, REVISED])
    assert "(revised)" not in drawn([FIRST, NEXT, REVISED])
