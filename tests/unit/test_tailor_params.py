"""Parameters of ``GET /api/v0.1/docs``."""

from __future__ import annotations

import pytest

from tailor.queries.params import BadParameter, TailRequest, parse_tail_request


def parse(last_event_id=None, **args):
    return parse_tail_request({k: [v] for k, v in args.items()}, last_event_id, max_backfill=100)


def test_query_string_and_defaults():
    assert parse(i="logs", q="level:error") == TailRequest(index="logs", query="level:error")


def test_dsl_is_parsed_and_unwrapped():
    tail = parse(i="logs", q='{"query": {"match": {"m": "x"}}}')
    assert tail.query == {"match": {"m": "x"}}


def test_sid_and_options():
    tail = parse(s="0123456789abcdef", limit="3", timeout="2.5", n="7", format="sse", last_event_id="e:4")
    assert tail == TailRequest(
        sid="0123456789abcdef", limit=3, timeout=2.5, backfill=7, format="sse", last_event_id="e:4"
    )


def test_last_event_id_only_for_sse_and_from_a_parameter_too():
    assert parse(i="l", q="x", last_event_id="e:1").last_event_id is None
    assert parse(i="l", q="x", format="sse", lastEventId="e:2").last_event_id == "e:2"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({}, "missing_parameter"),
        ({"i": "logs"}, "missing_parameter"),
        ({"q": "x"}, "missing_parameter"),
        ({"s": " "}, "missing_parameter"),
        ({"s": "abc", "i": "logs"}, "invalid_parameter"),
        ({"i": "LOGS", "q": "x"}, "invalid_index"),
        ({"i": "a/b", "q": "x"}, "invalid_index"),
        ({"i": "logs", "q": ""}, "invalid_query"),
        ({"i": "logs", "q": "{bad"}, "invalid_query"),
        ({"i": "logs", "q": '{"a": {}, "b": {}}'}, "invalid_query"),
        ({"i": "logs", "q": "x", "limit": "1.5"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "limit": "-1"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "timeout": "nan"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "timeout": "-2"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "timeout": "soon"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "n": "101"}, "invalid_parameter"),
        ({"i": "logs", "q": "x", "format": "csv"}, "invalid_parameter"),
    ],
)
def test_bad_parameters(args, code):
    with pytest.raises(BadParameter) as info:
        parse(**args)
    assert info.value.code == code
    assert info.value.reason


def test_repeated_parameter_is_refused():
    with pytest.raises(BadParameter):
        parse_tail_request({"i": ["a", "b"], "q": ["x"]})
