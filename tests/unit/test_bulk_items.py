"""Pairing a bulk request's actions with the engine's items; which paths the bulk listener serves."""

from __future__ import annotations

import io
import json

import pytest

from beater.bulk.items import Unpaired, actions, response_items, stored_count, stored_documents
from beater.bulk.routes import route


def body(*lines: object) -> io.BytesIO:
    return io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))


def answer(*items: object) -> io.BytesIO:
    return io.BytesIO(json.dumps({"took": 1, "errors": True, "items": list(items)}).encode())


def test_index_and_create_that_the_engine_stored_are_the_stored_documents() -> None:
    request = body(
        {"index": {"_index": "a"}},
        {"n": 1},
        {"create": {"_index": "a", "_id": "x"}},
        {"n": 2},
        {"update": {"_index": "a", "_id": "x"}},
        {"doc": {"n": 3}},
        {"delete": {"_index": "a", "_id": "x"}},
        {"index": {"_index": "a"}},
        {"n": "conflict"},
        {"create": {}},
        {"n": 5},
    )
    response = answer(
        {"index": {"_index": "a", "_id": "auto1", "status": 201}},
        {"create": {"_index": "a", "_id": "x", "status": 201}},
        {
            "update": {
                "_index": "a",
                "_id": "x",
                "status": 200,
                "result": "updated",
                "get": {"_source": {"n": 3}},
            }
        },
        {"delete": {"_index": "a", "_id": "x", "status": 200, "result": "deleted"}},
        {
            "index": {
                "_index": "a",
                "_id": "auto2",
                "status": 400,
                "error": {"type": "mapper_parsing_exception"},
            }
        },
        {"create": {"_index": "from-the-path", "_id": "auto3", "status": 201}},
    )
    found = list(stored_documents(actions(request), response_items(response)))
    assert [(d.position, d.index, d.doc_id, d.source) for d in found] == [
        (0, "a", "auto1", {"n": 1}),
        (1, "a", "x", {"n": 2}),
        (2, "a", "x", {"n": 3}),  # the update's document as stored, from the answer's get
        (5, "from-the-path", "auto3", {"n": 5}),
    ]


def test_noop_stores_nothing_and_an_update_without_its_document_is_to_be_read_back() -> None:
    request = body(
        {"index": {"_index": "a", "pipeline": "drops"}},
        {"n": 1},
        {"update": {"_index": "a", "_id": "u"}},
        {"doc": {"n": 2}},
        {"update": {"_index": "a", "_id": "same"}},
        {"doc": {"n": 3}},
        {"index": {"_index": "a"}},
        {"n": 4},
    )
    response = answer(
        {"index": {"_index": "a", "_id": "d", "_version": -3, "result": "noop", "status": 200}},
        {
            "update": {
                "_index": "a",
                "_id": "u",
                "result": "updated",
                "status": 200,
                "_seq_no": 7,
                "_primary_term": 1,
            }
        },
        {"update": {"_index": "a", "_id": "same", "result": "noop", "status": 200}},
        {"index": {"_index": "a", "_id": "k", "result": "created", "status": 201}},
    )
    found = list(stored_documents(actions(request), response_items(response), None, "from-the-url"))
    assert [(d.position, d.action, d.source, d.pipeline, d.seq_no) for d in found] == [
        (1, "update", None, "from-the-url", 7),
        (3, "index", {"n": 4}, "from-the-url", None),
    ]
    response.seek(0)
    assert stored_count(response) == 2


def test_blank_lines_and_crlf_are_fine() -> None:
    request = io.BytesIO(b'\r\n{"index":{}}\r\n\r\n{"n":1}\r\n')
    response = answer({"index": {"_index": "a", "_id": "1", "status": 200}})
    assert [d.source for d in stored_documents(actions(request), response_items(response))] == [{"n": 1}]


@pytest.mark.parametrize(
    "response",
    [
        answer({"delete": {"_index": "a", "status": 200}}),  # not the action asked
        answer({"index": 3}),
    ],
)
def test_items_that_do_not_answer_their_action_are_unpaired(response: io.BytesIO) -> None:
    with pytest.raises(Unpaired):
        list(stored_documents(actions(body({"index": {}}, {"n": 1})), response_items(response)))


def test_an_action_line_that_is_no_action_is_unpaired() -> None:
    with pytest.raises(Unpaired):
        list(actions(io.BytesIO(b'{"index": {}, "create": {}}\n{"n": 1}\n')))


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "_bulk", "bulk"),
        ("PUT", "_bulk", "bulk"),
        ("POST", "logs-2026/_bulk", "bulk"),
        ("GET", "_bulk", "bulk_method"),
        ("POST", "_search/_bulk", None),
        ("POST", "a/b/_bulk", None),
        ("GET", "", "passthrough"),
        ("HEAD", "", "passthrough"),
        ("POST", "", "passthrough_method"),
        ("PUT", "_index_template/t", "passthrough"),
        ("HEAD", "_template/t", "passthrough"),
        ("DELETE", "_index_template/t", "passthrough_method"),
        ("GET", "_component_template/c", "passthrough"),
        ("GET", "_ilm/policy/p", "passthrough"),
        ("GET", "_ilm/status", None),
        ("GET", "_license", "passthrough"),
        ("GET", "_cluster/health", "passthrough"),
        ("GET", "_cluster/settings", None),
        ("GET", "_nodes/http", "passthrough"),
        ("GET", "logs/_search", None),
        ("DELETE", "logs", None),
        ("HEAD", "logs", "passthrough"),  # does the rollover alias exist (Logstash's ILM set-up)
        ("GET", "logs", None),
        ("GET", "_cat/indices", None),
    ],
)
def test_routes(method: str, path: str, kind: str | None) -> None:
    assert route(method, [s for s in path.split("/") if s]) == kind


def test_the_name_written_to_is_kept_where_the_engine_stored_in_another_index() -> None:
    request = body(
        {"create": {"_index": "logs-app-default"}},
        {"n": 1},
        {"create": {}},
        {"n": 2},
        {"index": {"_index": "plain"}},
        {"n": 3},
    )
    response = answer(
        {"create": {"_index": ".ds-logs-app-default-000001", "_id": "1", "status": 201}},
        {"create": {"_index": ".ds-logs-app-default-000001", "_id": "2", "status": 201}},
        {"index": {"_index": "plain", "_id": "3", "status": 201}},
    )
    found = list(stored_documents(actions(request), response_items(response), "logs-app-default"))
    assert [(d.index, d.written_as) for d in found] == [
        (".ds-logs-app-default-000001", "logs-app-default"),
        (".ds-logs-app-default-000001", "logs-app-default"),  # the path's target
        ("plain", None),  # stored where it was written: nothing to learn
    ]
