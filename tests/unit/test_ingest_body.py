"""Reading ingest bodies: what is a document, what is rejected, what is a 400."""

from __future__ import annotations

import json

import pytest

from beater.ingest_body import UnreadableBody, document_problem, media_type, parse_ingest_body


def test_single_object() -> None:
    body = parse_ingest_body(b'{"a": 1}', "application/json")
    assert body.docs == [(0, {"a": 1})]
    assert body.rejected == []


def test_array_keeps_positions_and_rejects_non_objects() -> None:
    body = parse_ingest_body(json.dumps([{"a": 1}, 2, None, {"b": 2}, [1]]).encode(), "application/json")
    assert body.docs == [(0, {"a": 1}), (3, {"b": 2})]
    assert [r["position"] for r in body.rejected] == [1, 2, 4]
    assert body.rejected[0]["reason"] == "item is not a JSON object but int"
    assert body.rejected[1]["reason"] == "item is not a JSON object but null"
    assert body.rejected[2]["reason"] == "item is not a JSON object but array"


def test_empty_array_is_fine_and_empty() -> None:
    body = parse_ingest_body(b"[]", "application/json")
    assert body.docs == []
    assert body.rejected == []


def test_ndjson_positions_are_line_indices() -> None:
    raw = b'{"a":1}\n\n{"a":\n"str"\n{"a":2}\n'
    body = parse_ingest_body(raw, "application/x-ndjson; charset=utf-8")
    assert body.docs == [(0, {"a": 1}), (4, {"a": 2})]
    assert [r["position"] for r in body.rejected] == [2, 3]
    assert body.rejected[0]["reason"].startswith("line is not JSON")


def test_ndjson_sent_as_json_is_still_read() -> None:
    body = parse_ingest_body(b'{"a":1}\n{"a":2}\n', "application/json")
    assert [d for _, d in body.docs] == [{"a": 1}, {"a": 2}]


def test_missing_content_type_means_json() -> None:
    assert parse_ingest_body(b'{"a":1}', None).docs == [(0, {"a": 1})]


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
        parse_ingest_body(raw, ctype)
    assert reason in err.value.reason


def test_all_bad_items_are_listed_in_the_error() -> None:
    with pytest.raises(UnreadableBody) as err:
        parse_ingest_body(b"[1, 2]", "application/json")
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
    assert parse_ingest_body(b"{}", "application/vnd.acme+json").docs == [(0, {})]
