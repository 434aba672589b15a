"""Ingest bodies the beater cannot read (400, 415) or reads in part (200 with rejected items).

What is refused is never published; what is readable beside it is, in order,
as the fence after it shows.
"""

from __future__ import annotations

import json

import pytest

from devstack.wamp_client import WampClient
from tests.http_client import engine_request, ingest
from tests.integration.delivery_fence import fence, markers, watch_all
from tests.real_stack import EngineHandle, ServiceHandle, StartService

# --- 400: nothing readable ---------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "reason_part"),
    [
        ('{"kind": "x", "marker": "broken"', "application/json", "not JSON"),
        ("", "application/json", "empty"),
        ("   \n  ", "application/x-ndjson", "empty"),
        ("42", "application/json", "JSON object or an array"),
        (b"\xff\xfe{}", "application/json", "UTF-8"),
    ],
)
def test_unreadable_body_is_400_and_publishes_nothing(
    beater: ServiceHandle,
    wamp: WampClient,
    index: str,
    body: str | bytes,
    content_type: str,
    reason_part: str,
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, body, content_type=content_type)
    assert resp.status == 400
    assert resp.headers["content-type"] == "application/json"
    payload = resp.json()
    assert payload["error"] == "unreadable_body"
    assert reason_part in payload["reason"]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


# --- 415: a body that is not typed as JSON is not read ------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("kind=x&marker=form", "application/x-www-form-urlencoded"),
        ('{"kind": "x", "marker": "text"}', "text/plain"),
        ('{"kind": "x", "marker": "multipart"}', "multipart/form-data; boundary=x"),
    ],
)
def test_body_not_typed_as_json_is_415_and_publishes_nothing(
    beater: ServiceHandle, wamp: WampClient, index: str, body: str, content_type: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, body, content_type=content_type)
    assert resp.status == 415
    assert resp.headers["content-type"] == "application/json"
    assert resp.json()["error"] == "unsupported_media_type"
    assert "application/json" in resp.json()["reason"]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


def test_body_whose_items_are_all_bad_is_400_listing_them(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, [1, "two", None, [3]])
    assert resp.status == 400
    payload = resp.json()
    assert payload["error"] == "unreadable_body"
    assert [r["position"] for r in payload["rejected"]] == [0, 1, 2, 3]
    assert markers(fence(beater.url, index, sink)) == ["fence"]


# --- 200 with rejected items: the good ones go through ------------------------------


def test_bad_line_inside_ndjson_is_rejected_and_the_rest_delivered(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    body = "\n".join(
        [
            json.dumps({"kind": "x", "marker": "one"}),
            '{"kind": "x", "marker": ',  # truncated line
            "",  # blank lines are not items
            "[1, 2]",  # valid JSON, not an object
            json.dumps({"kind": "x", "marker": "two"}),
        ]
    )
    resp = ingest(beater.url, index, body, content_type="application/x-ndjson")
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert payload["published"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1, 3]
    assert "not JSON" in payload["rejected"][0]["reason"]
    assert "not a JSON object" in payload["rejected"][1]["reason"]
    assert markers(fence(beater.url, index, sink)) == ["one", "two", "fence"]


def test_non_object_array_items_are_rejected_and_the_rest_delivered(
    beater: ServiceHandle, wamp: WampClient, index: str
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(
        beater.url,
        index,
        [
            {"kind": "x", "marker": "a"},
            17,
            {"kind": "x", "_type": "nope", "marker": "meta"},
            {"kind": "x", "marker": "b"},
        ],
    )
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1, 2]
    assert "metadata field" in payload["rejected"][1]["reason"]
    assert markers(fence(beater.url, index, sink)) == ["a", "b", "fence"]


@pytest.mark.parametrize("mode", ["documents", "msearch"])
def test_document_the_engine_cannot_parse_is_rejected_alone(
    start_beater: StartService, wamp: WampClient, index: str, engine: EngineHandle, mode: str
) -> None:
    # "documents" fails the whole request for one bad document, so the beater
    # must fall back to isolating it; "msearch" fails that item alone.
    beater = start_beater(ESTROM_PERCOLATE_MODE=mode)
    # A scalar where an object is mapped: every engine refuses it. (An object
    # where a number is mapped is refused by Elasticsearch 7 only: OpenSearch's
    # ignore_malformed drops that field and keeps the document.)
    mappings = {
        "properties": {"size": {"type": "long"}, "owner": {"properties": {"name": {"type": "keyword"}}}}
    }
    engine_request(engine.url, "PUT", f"/{index}", {"mappings": mappings})
    sid = wamp.call("com.estrom.register_query", index, "size:[1 TO 10] OR kind:fence OR owner.name:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    docs = [
        {"size": 5, "marker": "ok-1"},
        {"owner": "a scalar where an object is mapped", "marker": "conflict"},
        {"size": 7, "marker": "ok-2"},
    ]
    resp = ingest(beater.url, index, docs)
    assert resp.status == 200
    payload = resp.json()
    assert payload["accepted"] == 2
    assert payload["published"] == 2
    assert [r["position"] for r in payload["rejected"]] == [1]
    assert payload["rejected"][0]["reason"].startswith("engine refused the document")
    assert markers(fence(beater.url, index, sink)) == ["ok-1", "ok-2", "fence"]
