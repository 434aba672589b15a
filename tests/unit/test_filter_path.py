"""filter_path as the engine applies it (beater/bulk/filter_path.py)."""

from __future__ import annotations

import io
import json

import pytest

from beater.bulk.filter_path import FilterPath, filtered_answer, split_filter_path

ANSWER = {
    "took": 3,
    "errors": True,
    "items": [
        {"index": {"_index": "a", "_id": "1", "status": 201, "result": "created"}},
        {"create": {"_index": "a", "_id": "2", "status": 409, "error": {"type": "conflict", "reason": "x"}}},
    ],
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "errors,items.*.error,items.*.status",
            {
                "errors": True,
                "items": [
                    {"index": {"status": 201}},
                    {"create": {"status": 409, "error": {"type": "conflict", "reason": "x"}}},
                ],
            },
        ),
        ("took", {"took": 3}),
        ("items.*.error", {"items": [{"create": {"error": {"type": "conflict", "reason": "x"}}}]}),
        ("items.index._id", {"items": [{"index": {"_id": "1"}}]}),
        ("**.type", {"items": [{"create": {"error": {"type": "conflict"}}}]}),
        ("nothing", {}),
        ("-items", {"took": 3, "errors": True}),
        (
            "-took,-items.*._index,-items.*.error",
            {
                "errors": True,
                "items": [
                    {"index": {"_id": "1", "status": 201, "result": "created"}},
                    {"create": {"_id": "2", "status": 409}},
                ],
            },
        ),
        ("it*s.*.status", {"items": [{"index": {"status": 201}}, {"create": {"status": 409}}]}),
    ],
)
def test_filters_as_the_engine(spec: str, expected: object) -> None:
    assert FilterPath(spec).apply(ANSWER) == expected
    streamed = filtered_answer(io.BytesIO(json.dumps(ANSWER).encode()), FilterPath(spec))
    assert json.load(streamed) == expected


def test_an_answer_without_items_is_filtered_whole() -> None:
    error = {"error": {"type": "illegal_argument_exception", "reason": "r"}, "status": 400}
    assert json.load(filtered_answer(io.BytesIO(json.dumps(error).encode()), FilterPath("error.type"))) == {
        "error": {"type": "illegal_argument_exception"}
    }


def test_split_takes_filter_path_out_of_the_uri() -> None:
    uri, wanted = split_filter_path(b"/_bulk?filter_path=errors,items.*.error,items.*.status&refresh=true")
    assert uri == b"/_bulk?refresh=true"
    assert wanted is not None
    assert wanted.includes == [("errors",), ("items", "*", "error"), ("items", "*", "status")]
    assert split_filter_path(b"/_bulk?refresh=true") == (b"/_bulk?refresh=true", None)
    assert split_filter_path(b"/x/_bulk?filter_path=took")[0] == b"/x/_bulk"
