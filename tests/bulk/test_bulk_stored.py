"""Published is stored: updates publish the document after the update, pipelines what they stored.

Each case compares what a subscriber received with what the engine holds
(``GET /<index>/_doc/<id>``), and the shipper's answer with the engine's
own answer to the same request on another index.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import watch
from tests.data_streams import put_data_stream_template
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle

pytestmark = pytest.mark.integration

NDJSON = {"content-type": "application/x-ndjson"}


def ndjson(*lines: dict[str, Any]) -> bytes:
    return ("".join(json.dumps(line) + "\n" for line in lines)).encode()


def stored_source(engine: EngineHandle, index: str, doc_id: str) -> dict[str, Any]:
    return engine_request(engine.url, "GET", f"/{index}/_doc/{doc_id}")["_source"]


def without_volatile(answer: dict[str, Any], index: str) -> list[dict[str, Any]]:
    """The items, without what differs between two indices and two runs."""
    out = []
    for item in answer["items"]:
        ((op, result),) = item.items()
        kept = {k: v for k, v in result.items() if k not in ("_index", "_seq_no", "_primary_term", "_id")}
        assert result.get("_index") in (index, None)
        out.append({op: kept})
    return out


def test_updates_publish_the_document_as_stored_and_answer_as_the_engine(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    direct = f"{index}-direct"

    def body(name: str) -> bytes:
        return ndjson(
            {"index": {"_index": name, "_id": "a"}},
            {"kind": "u", "n": 1, "keep": "yes"},
            {"update": {"_index": name, "_id": "a"}},
            {"doc": {"n": 2}},  # merged: keep stays
            {"update": {"_index": name, "_id": "b"}},
            {"doc": {"kind": "u", "n": 3}, "doc_as_upsert": True},
            {"update": {"_index": name, "_id": "c"}},
            {"doc": {"n": 99}, "upsert": {"kind": "u", "n": 4}},  # absent: the upsert is stored
            {"update": {"_index": name, "_id": "a"}},
            {"doc": {"n": 2}},  # nothing changes: noop, nothing published
            {"update": {"_index": name, "_id": "a", "_source": True}},  # the shipper asks: never answered
            {"doc": {"n": 5}},
        )

    for name in (index, direct):
        engine_request(engine.url, "PUT", f"/{name}")
    sink = watch(wamp, index)
    through = http("POST", f"{beater.url}/_bulk", body(index), NDJSON)
    expected = http("POST", f"{engine.url}/_bulk", body(direct).replace(b', "_source": true', b""), NDJSON)
    assert through.status == expected.status == 200, through.body
    assert "x-estrom-unpublished" not in through.headers
    assert without_volatile(through.json(), index) == without_volatile(expected.json(), direct)
    assert all("get" not in item.get("update", {}) for item in through.json()["items"])

    hits = sink.wait_for_count(5)
    assert [(h["_id"], h["_source"]) for h in hits] == [
        ("a", {"kind": "u", "n": 1, "keep": "yes"}),
        ("a", {"kind": "u", "n": 2, "keep": "yes"}),
        ("b", {"kind": "u", "n": 3}),
        ("c", {"kind": "u", "n": 4}),
        ("a", {"kind": "u", "n": 5, "keep": "yes"}),
    ]
    assert hits[-1]["_source"] == stored_source(engine, index, "a")
    # The noop was published nothing: a marker sent after arrives next.
    http("POST", f"{beater.url}/_bulk", ndjson({"index": {"_index": index}}, {"kind": "u", "n": 6}), NDJSON)
    assert [h["_source"]["n"] for h in sink.wait_for_count(6)][5:] == [6]


def _pipelines_or_skip(engine: EngineHandle, name: str, processors: list[dict[str, Any]]) -> None:
    """The pipeline ``name``, or a skip where the engine has no such processors."""
    answer = http(
        "PUT",
        f"{engine.url}/_ingest/pipeline/{name}",
        json.dumps({"processors": processors}),
        {"content-type": "application/json"},
    )
    if answer.status == 400 and b"No processor type exists" in answer.body:
        pytest.skip(
            "this engine has no ingest-common processors (Elasticsearch 7.17's module is not on "
            "Maven Central; the OpenSearch tiers run this test)"
        )
    assert answer.status == 200, answer.body


REDACT = [
    {"set": {"field": "seen_by", "value": "pipeline"}},
    {"remove": {"field": "ssn", "ignore_missing": True}},
    {"drop": {"if": "ctx.drop_me == true"}},
]


@pytest.mark.parametrize("how", ["parameter", "action", "default_pipeline", "final_pipeline"])
def test_subscribers_see_what_the_pipeline_stored_and_nothing_it_dropped(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str, how: str
) -> None:
    pipeline = f"redact-{how.replace('_', '-')}"
    _pipelines_or_skip(engine, pipeline, REDACT)
    settings = {how: pipeline} if how.endswith("_pipeline") else {}
    engine_request(engine.url, "PUT", f"/{index}", {"settings": {"index": settings}} if settings else None)
    sink = watch(wamp, index)
    spec: dict[str, Any] = {"_index": index}
    if how == "action":
        spec["pipeline"] = pipeline
    docs = [
        {"kind": "p", "n": 1, "ssn": "123-45-6789"},
        {"kind": "p", "n": 2, "drop_me": True, "ssn": "987-65-4321"},
        {"kind": "p", "n": 3},
    ]
    lines: list[dict[str, Any]] = []
    for n, doc in enumerate(docs, 1):
        lines += [{"index": {**spec, "_id": str(n)}}, doc]
    query = f"?pipeline={pipeline}" if how == "parameter" else ""
    answer = http("POST", f"{beater.url}/_bulk{query}", ndjson(*lines), NDJSON)
    assert answer.status == 200, answer.body
    assert "x-estrom-unpublished" not in answer.headers
    results = [item["index"]["result"] for item in answer.json()["items"]]
    assert results == ["created", "noop", "created"]
    hits = sink.wait_for_count(2)
    assert [(h["_id"], h["_source"]) for h in hits] == [
        ("1", {"kind": "p", "n": 1, "seen_by": "pipeline"}),
        ("3", {"kind": "p", "n": 3, "seen_by": "pipeline"}),
    ]
    for hit in hits:
        assert hit["_source"] == stored_source(engine, index, hit["_id"])
    # The dropped document was published nothing: a marker written after arrives next.
    marker = ndjson({"index": {**spec, "_id": "4"}}, {"kind": "p", "n": 4})
    http("POST", f"{beater.url}/_bulk{query}", marker, NDJSON)
    assert [h["_id"] for h in sink.wait_for_count(3)][2:] == ["4"]


def test_pipeline_none_turns_the_default_off_and_the_final_one_still_runs(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    _pipelines_or_skip(engine, "mark-default", [{"set": {"field": "by", "value": "default"}}])
    _pipelines_or_skip(engine, "mark-final", [{"set": {"field": "last", "value": "final"}}])
    settings = {"index": {"default_pipeline": "mark-default", "final_pipeline": "mark-final"}}
    engine_request(engine.url, "PUT", f"/{index}", {"settings": settings})
    sink = watch(wamp, index)
    lines = ndjson({"index": {"_index": index, "_id": "1"}}, {"kind": "p", "n": 1})
    assert http("POST", f"{beater.url}/_bulk?pipeline=_none", lines, NDJSON).status == 200
    (hit,) = sink.wait_for_count(1)
    assert hit["_source"] == {"kind": "p", "n": 1, "last": "final"} == stored_source(engine, index, "1")


def test_a_data_stream_behind_a_default_pipeline_publishes_what_it_stored(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    _pipelines_or_skip(engine, "stream-mark", [{"set": {"field": "via", "value": "stream"}}])
    stream = f"logs-{index}-default"
    settings = {"index": {"default_pipeline": "stream-mark"}}
    put_data_stream_template(engine.url, f"{index}-t", f"logs-{index}-*", settings)
    sink = watch(wamp, stream)
    lines = ndjson({"create": {"_index": stream}}, {"kind": "p", "@timestamp": "2026-12-06T00:00:00Z"})
    answer = http("POST", f"{beater.url}/_bulk", lines, NDJSON)
    assert answer.status == 200, answer.body
    (hit,) = sink.wait_for_count(1)
    assert hit["_source"]["via"] == "stream"
    assert hit["_source"] == stored_source(engine, hit["_index"], hit["_id"])
