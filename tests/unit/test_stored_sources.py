"""Which writes ran an ingest pipeline, and reading back exactly the write that stored a document."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from beater.bulk.items import StoredDocument
from beater.bulk.stored_sources import IndexPipelines, Pipelines, pipelines_of, read_back, runs_pipeline
from tests.memory.doubles import result


@pytest.mark.parametrize(
    ("named", "index", "runs"),
    [
        (None, None, False),
        (None, Pipelines(), False),
        ("p", None, True),
        ("_none", Pipelines(default="d"), False),  # the default turned off
        ("_none", Pipelines(final="f"), True),  # the final one runs all the same
        (None, Pipelines(default="d"), True),
        (None, Pipelines(final="f"), True),
    ],
)
def test_runs_pipeline(named: str | None, index: Pipelines | None, runs: bool) -> None:
    assert runs_pipeline(named, index) is runs


def test_pipelines_of_a_settings_answer() -> None:
    answer = {
        "a": {"settings": {"index.default_pipeline": "d"}},
        "b": {"settings": {"index.final_pipeline": "f", "index.default_pipeline": "_none"}},
        "c": {"settings": {}},
    }
    assert pipelines_of(answer) == {"a": Pipelines("d"), "b": Pipelines(None, "f"), "c": Pipelines()}


def test_index_pipelines_are_asked_once_per_ttl() -> None:
    asked: list[str] = []

    async def get(path: str) -> tuple[int, bytes]:
        asked.append(path)
        return 200, json.dumps({"a": {"settings": {"index.default_pipeline": "d"}}}).encode()

    clock = Clock()
    known = IndexPipelines(get, clock, ttl=5.0)
    for _ in range(3):
        assert result(ensureDeferred(known.of(["a", "b"]))) == {"a": Pipelines("d"), "b": Pipelines()}
    assert len(asked) == 1
    clock.advance(6)
    result(ensureDeferred(known.of(["a"])))
    assert len(asked) == 2


def _doc(doc_id: str | None, seq_no: int = 1) -> StoredDocument:
    return StoredDocument(0, "i", doc_id, None, seq_no=seq_no, primary_term=1)


def test_read_back_keeps_only_the_write_that_stored_each_document() -> None:
    answers = [
        {"found": True, "_seq_no": 1, "_primary_term": 1, "_source": {"n": 1}},
        {"found": True, "_seq_no": 9, "_primary_term": 1, "_source": {"n": "later"}},  # written again
        {"found": False},  # deleted before the read
    ]

    async def post(path: str, payload: Any) -> tuple[int, bytes]:
        assert path.startswith("/_mget")
        assert [d["_id"] for d in payload["docs"]] == ["one", "two", "three"]
        return 200, json.dumps({"docs": answers}).encode()

    docs = [_doc("one"), _doc("two"), _doc("three"), _doc(None)]
    read = result(ensureDeferred(read_back(post, docs)))
    assert [(d.doc_id, d.source) for d in read.found] == [("one", {"n": 1})]
    assert read.missing == {"rewritten_before_read": 1, "gone_before_read": 1, "unpaired": 1}
