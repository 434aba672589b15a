"""``estrom tail`` against a real tailor: live lines, --json, --limit, errors."""

from __future__ import annotations

import json
import signal

import pytest

from tests.tailor.helpers import send

pytestmark = pytest.mark.integration


def test_tail_prints_each_hit_as_it_is_ingested_and_ctrl_c_exits_0(cli, tailor, beater, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", index, "level:error")
    assert "following" in tail.wait_err("following")
    # Each document is ingested only after the previous line was printed.
    for i in range(3):
        send(
            beater.url,
            index,
            [
                {"level": "info", "message": f"fine {i}"},
                {
                    "@timestamp": f"2026-11-27T10:00:0{i}Z",
                    "level": "error",
                    "service": "api",
                    "message": f"boom {i}",
                },
            ],
        )
        assert tail.line() == f"2026-11-27T10:00:0{i}Z  level=error  service=api  boom {i}"
    tail.proc.send_signal(signal.SIGINT)
    assert tail.wait() == 0


def test_json_lines_parse_and_limit_exits_0(cli, tailor, beater, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", index, "--json", "--limit", "2", "kind:x")
    tail.wait_err("following")
    send(beater.url, index, [{"kind": "x", "n": 1}, {"kind": "y"}, {"kind": "x", "n": 2, "_id": "d2"}])
    assert tail.wait() == 0
    assert [json.loads(line) for line in tail.out_lines] == [
        {"_index": index, "_source": {"kind": "x", "n": 1}},
        {"_index": index, "_source": {"kind": "x", "n": 2}, "_id": "d2"},
    ]


def test_fields_choose_the_columns(cli, tailor, beater, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", index, "--fields", "host.name,n", "--limit", "1", "n:7")
    tail.wait_err("following")
    send(beater.url, index, [{"n": 7, "host": {"name": "web-1"}, "level": "warn", "message": "slow"}])
    assert tail.wait() == 0
    assert tail.out_lines == ["host.name=web-1  n=7  slow"]


def test_dsl_query_and_sid(cli, tailor, beater, wamp, index):
    sid = wamp.call("com.estrom.register_query", index, {"match": {"kind": "dsl"}})
    tail = cli("tail", "--tailor", tailor.url, "--sid", sid, "--json", "--limit", "1")
    assert sid in tail.wait_err("following")
    send(beater.url, index, [{"kind": "dsl"}])
    assert tail.wait() == 0
    assert json.loads(tail.out_lines[0])["_source"] == {"kind": "dsl"}


def test_unreachable_tailor_is_one_line_and_exit_1(cli):
    tail = cli("tail", "--tailor", "http://127.0.0.1:1", "-i", "logs", "level:error")
    assert tail.wait() == 1
    assert tail.out_lines == []
    assert len(tail.err_lines) == 1
    assert tail.err_lines[0].startswith("estrom: cannot reach the tailor at http://127.0.0.1:1")


def test_the_tailors_error_reason_is_shown(cli, tailor, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", index, "level:(error")
    assert tail.wait() == 1
    assert len(tail.err_lines) == 1
    assert tail.err_lines[0].startswith("estrom: the tailor refused the tail: 400 invalid_query")


def test_unknown_sid_is_404(cli, tailor):
    tail = cli("tail", "--tailor", tailor.url, "--sid", "0123456789abcdef")
    assert tail.wait() == 1
    assert "404" in tail.err_lines[0]


def test_help_has_examples(cli):
    for command in ("tail", "post", "queries"):
        shown = cli(command, "--help")
        assert shown.wait() == 0
        assert "examples:" in shown.out_lines
