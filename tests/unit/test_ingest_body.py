"""Reading ingest bodies: what is a document, what is rejected, what is a 400."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beater.ingest.body import (
    TooManyDocuments,
    UnreadableBody,
    media_type,
)
from tests.hostile.strategies import RAW_BODIES
from tests.unit.ingest_defaults import document_problem, parse


def test_single_object() -> None:
    body = parse(b'{"a": 1}', "application/json")
    assert body.docs == [(0, {"a": 1})]
    assert body.rejected == []


def test_array_keeps_positions_and_rejects_non_objects() -> None:
    body = parse(json.dumps([{"a": 1}, 2, None, {"b": 2}, [1]]).encode(), "application/json")
    assert body.docs == [(0, {"a": 1}), (3, {"b": 2})]
    assert [r["position"] for r in body.rejected] == [1, 2, 4]
    assert body.rejected[0]["reason"] == "item is not a JSON object but int"
    assert body.rejected[1]["reason"] == "item is not a JSON object but null"
    assert body.rejected[2]["reason"] == "item is not a JSON object but array"


def test_empty_array_is_fine_and_empty() -> None:
    body = parse(b"[]", "application/json")
    assert body.docs == []
    assert body.rejected == []


def test_ndjson_positions_are_line_indices() -> None:
    raw = b'{"a":1}\n\n{"a":\n"str"\n{"a":2}\n'
    body = parse(raw, "application/x-ndjson; charset=utf-8")
    assert body.docs == [(0, {"a": 1}), (4, {"a": 2})]
    assert [r["position"] for r in body.rejected] == [2, 3]
    assert body.rejected[0]["reason"].startswith("line is not JSON")


def test_ndjson_sent_as_json_is_still_read() -> None:
    body = parse(b'{"a":1}\n{"a":2}\n', "application/json")
    assert [d for _, d in body.docs] == [{"a": 1}, {"a": 2}]


def test_missing_content_type_means_json() -> None:
    assert parse(b'{"a":1}', None).docs == [(0, {"a": 1})]


@pytest.mark.parametrize(
    ("raw", "ctype", "reason"),
    [
        (b"", "application/json", "body is empty"),
        (b"{nope", "application/json", "body is not JSON"),
        (b'"just a string"', "application/json", "JSON object or an array"),
        (b"{}", "text/plain", "unsupported content type 'text/plain'"),
        (b"\xff", "application/json", "not UTF-8"),
        (b"1\n2\n", "application/x-ndjson", "no item of the body is a document"),
    ],
)
def test_unreadable(raw: bytes, ctype: str, reason: str) -> None:
    with pytest.raises(UnreadableBody) as err:
        parse(raw, ctype)
    assert reason in err.value.reason


def test_all_bad_items_are_listed_in_the_error() -> None:
    with pytest.raises(UnreadableBody) as err:
        parse(b"[1, 2]", "application/json")
    assert [r["position"] for r in err.value.rejected] == [0, 1]


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"_index": "x"}, "metadata field"),
        ({"_source": {}}, "metadata field"),
        ({"": 1}, "not a valid field name"),
        ({"..": 1}, "not a valid field name"),
        ({"_id": "fine", "_custom": 1, "a.b": 2}, None),
    ],
)
def test_document_problem(doc: dict, problem: str | None) -> None:
    found = document_problem(doc)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_media_type() -> None:
    assert media_type("Application/JSON; charset=UTF-8") == "application/json"
    assert media_type(None) == ""
    assert parse(b"{}", "application/vnd.acme+json").docs == [(0, {})]


def test_a_document_deeper_than_the_limit_is_rejected_alone() -> None:
    deep: dict = {"leaf": 1}
    for _ in range(4):
        deep = {"x": deep}
    body = parse(json.dumps([{"a": 1}, deep]).encode(), "application/json", max_depth=4)
    assert body.docs == [(0, {"a": 1})]
    assert body.rejected[0]["position"] == 1
    assert "ESTROM_INGEST_MAX_DEPTH" in body.rejected[0]["reason"]
    assert parse(json.dumps(deep).encode(), "application/json", max_depth=5).docs


def test_nesting_past_the_parser_is_a_rejected_line_or_a_400() -> None:
    abyss = "[" * 100_000 + "]" * 100_000
    body = parse(('{"a":1}\n' + abyss + "\n").encode(), "application/x-ndjson")
    assert body.docs == [(0, {"a": 1})]
    assert "nested too deeply" in body.rejected[0]["reason"]
    with pytest.raises(UnreadableBody, match="nested too deeply"):
        parse(abyss.encode(), "application/json")


def test_values_the_engine_cannot_read_are_rejected_alone() -> None:
    raw = b'[{"a": "\\ud800"}, {"b": 1e400}, {"c": NaN}, {"d": 1}]'
    body = parse(raw, "application/json")
    assert body.docs == [(3, {"d": 1})]
    reasons = [r["reason"] for r in body.rejected]
    assert "surrogate" in reasons[0]
    assert "out of range" in reasons[1]
    assert "out of range" in reasons[2]


def test_too_many_items_is_refused_as_a_whole() -> None:
    with pytest.raises(TooManyDocuments, match="ESTROM_INGEST_MAX_DOCS"):
        parse(json.dumps([{}, 1, {}]).encode(), "application/json", max_docs=2)
    with pytest.raises(TooManyDocuments):
        parse(b'{"a":1}\nx\n{"a":2}\n', "application/x-ndjson", max_docs=2)
    assert len(parse(b'{"a":1}\n\n{"a":2}\n', "application/x-ndjson", max_docs=2).docs) == 2


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_utf8_byte_order_mark_is_accepted(content_type: str) -> None:
    body = parse(b'\xef\xbb\xbf{"a": 1}\n', content_type)
    assert body.docs == [(0, {"a": 1})]


# --- the fast path (orjson) reads every body as the standard library's path does ---------


def _outcome(raw: bytes, content_type: str, max_depth: int, fast: bool) -> str:
    """Everything a caller can see of a parse, exactly (repr: 1 and 1.0, 0.0 and -0.0 differ)."""
    try:
        body = parse(raw, content_type, max_depth, 50, fast=fast)
    except (UnreadableBody, TooManyDocuments) as exc:
        return repr((type(exc).__name__, str(exc), getattr(exc, "rejected", None)))
    return repr((body.docs, body.rejected))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=RAW_BODIES,
    content_type=st.sampled_from(["application/json", "application/x-ndjson", ""]),
    max_depth=st.integers(1, 25),
)
def test_fast_path_reads_every_body_as_the_standard_library(
    raw: bytes, content_type: str, max_depth: int
) -> None:
    assert _outcome(raw, content_type, max_depth, True) == _outcome(raw, content_type, max_depth, False)


@pytest.mark.parametrize(
    "raw",
    [
        b'[{"n": 18446744073709551616}, {"n": -9223372036854775809}]',  # orjson: floats
        b'[{"n": 12345678901234567890123}]',
        b'[{"a": 1, "b": 2, "a": 3}]',  # a repeated key keeps its first place, its last value
        b'[{"s": "\\ud83d\\ude00"}, {"s": "\\u00e9"}]',  # escaped pair, escaped BMP character
        b'[{"f": 1e-400}, {"f": -0.0}, {"f": 1.0}, {"f": 0.1}, {"f": 5e-324}, {"f": 1.7976931348623157e308}]',
        b'\xef\xbb\xbf[{"a": 1}]',
        b'[{"a": 1}]\r\n',
        b'{"deep": ' + b"[" * 300 + b"]" * 300 + b"}",  # read by orjson, past its writing limit
        b"[" + b'{"a":' * 1010 + b"1" + b"}" * 1010 + b"]",  # read by orjson, past json's parser
        b'{"a":' * 1010 + b"1" + b"}" * 1010,
        b'[{"x": "{[{[{[{[{[{[{[{[{[{[{[{["}]',  # brackets in strings only: conservative
        b'[{".a": 1}, {"a.": 1}, {"...": 1}, {"_ids": 1}, {"_id": "x", "b": {"_source": 1}}]',
    ],
)
@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
def test_fast_path_edges(raw: bytes, content_type: str) -> None:
    for max_depth in (2, 20):
        assert _outcome(raw, content_type, max_depth, True) == _outcome(raw, content_type, max_depth, False)


def test_a_big_integer_keeps_its_value() -> None:
    body = parse(b'{"n": 18446744073709551617}', "application/json")
    assert body.docs == [(0, {"n": 18446744073709551617})]
    assert isinstance(body.docs[0][1]["n"], int)
