"""The engine's bulk API through the beater, driven by the engine's own Python client.

elasticsearch-py's ``helpers.streaming_bulk`` writes once through estrom and
once straight to the engine, with the same mixed actions: the answers are
the same item for item (a mapping conflict included), the stored documents
are the same, and the documents stored by ``index``/``create`` reach a
subscriber with the ``_index``/``_id`` the engine reported.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers

from devstack.stack import Stack
from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import MAPPING, check_streaming_bulk, engine_family, watch
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_streaming_bulk_answers_and_stores_as_the_engine_does(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    if engine_family(engine) != "elasticsearch":
        pytest.skip("elasticsearch-py's case; OpenSearch's client runs it in test_bulk_opensearch_client.py")
    check_streaming_bulk(
        lambda url: Elasticsearch([url], timeout=120),  # the client's 10 s: less than a busy engine's pace
        helpers.streaming_bulk,
        beater,
        engine,
        wamp,
        index,
    )


def test_many_documents_in_one_bulk_are_all_published(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    engine_request(engine.url, "PUT", f"/{index}", MAPPING)
    sink = watch(wamp, index)
    client = Elasticsearch([beater.url], timeout=120)  # a busy test machine; the engine's pace, not ours
    actions = ({"_index": index, "_source": {"kind": "many", "i": i}} for i in range(3000))
    ok, errors = helpers.bulk(client, actions, chunk_size=2500, stats_only=True)
    client.close()
    assert (ok, errors) == (3000, 0)
    hits = sink.wait_for_count(3000, timeout=60)
    assert sorted(h["_source"]["i"] for h in hits) == list(range(3000))


def test_startup_requests_pass_through_and_nothing_else(
    beater: ServiceHandle, engine: EngineHandle, index: str
) -> None:
    root = http("GET", beater.url + "/")
    assert root.status == 200
    assert root.json() == http("GET", engine.url + "/").json()
    assert root.headers.get("x-elastic-product") == "Elasticsearch"
    assert http("HEAD", beater.url + "/").status == 200
    template = {"index_patterns": [f"{index}-tpl-*"], "template": {"settings": {"number_of_replicas": 0}}}
    name = f"estrom-test-{uuid.uuid4().hex[:8]}"
    put = http(
        "PUT",
        f"{beater.url}/_index_template/{name}",
        json.dumps(template),
        {"content-type": "application/json"},
    )
    assert (put.status, put.json()) == (200, {"acknowledged": True})
    assert http("HEAD", f"{beater.url}/_index_template/{name}").status == 200
    assert http("HEAD", f"{beater.url}/_index_template/{name}-none").status == 404
    got = http("GET", f"{beater.url}/_index_template/{name}").json()
    assert got["index_templates"][0]["name"] == name
    for path in ("/_cluster/health", "/_nodes", "/_nodes/http", "/_license", "/_ilm/policy"):
        via, straight = http("GET", beater.url + path), http("GET", engine.url + path)
        assert via.status == straight.status, path
    # Nothing else of the engine's API is served here:
    for method, path, status in [
        ("GET", f"/{index}/_search", 404),
        ("DELETE", f"/_index_template/{name}", 405),
        ("DELETE", f"/{index}", 404),
        ("GET", "/_cat/indices", 404),
        ("GET", "/_cluster/settings", 404),
        ("GET", "/_bulk", 405),
        ("POST", "/_search/_bulk", 404),
    ]:
        resp = http(method, beater.url + path)
        assert resp.status == status, (method, path, resp.body)
        assert resp.json()["error"] in ("not_found", "method_not_allowed")
    engine_request(engine.url, "DELETE", f"/_index_template/{name}")


def _bulk_body(index: str, docs: list[dict[str, Any]]) -> bytes:
    lines = []
    for doc in docs:
        lines += [json.dumps({"index": {"_index": index}}), json.dumps(doc)]
    return ("\n".join(lines) + "\n").encode()


def test_the_ingest_token_is_accepted_and_other_credentials_are_not_forwarded(
    start_beater: StartService, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    guarded = start_beater(ESTROM_INGEST_TOKEN="s3cret")
    sink = watch(wamp, index)
    body = _bulk_body(index, [{"kind": "auth", "m": 1}])
    ndjson = {"content-type": "application/x-ndjson"}
    refused = http("POST", guarded.url + "/_bulk", body, ndjson)
    assert refused.status == 401
    assert refused.json()["error"] == "unauthorized"
    assert refused.headers["www-authenticate"] == "Bearer"
    with_token = http("POST", guarded.url + "/_bulk", body, {**ndjson, "authorization": "Bearer s3cret"})
    assert with_token.status == 200, with_token.body
    # Credentials that are no writer's are refused, not handed to the engine (which, without
    # security of its own, would take anything); only ESTROM_BULK_AUTH=engine forwards them.
    basic = http("POST", guarded.url + "/_bulk", body, {**ndjson, "authorization": "Basic ZWxhc3RpYzpwdw=="})
    assert basic.status == 401, basic.body
    assert len(sink.wait_for_count(1)) == 1


def test_in_the_engine_credentials_mode_credentials_pass_through(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    judged = start_beater(ESTROM_BULK_AUTH="engine", ESTROM_INGEST_TOKEN="s3cret")
    sink = watch(wamp, index)
    body = _bulk_body(index, [{"kind": "auth", "m": 1}])
    headers = {"content-type": "application/x-ndjson", "authorization": "Basic ZWxhc3RpYzpwdw=="}
    # This test engine has no security: it takes any credentials; estrom's own indices stay out.
    assert http("POST", judged.url + "/_bulk", body, headers).status == 200
    assert len(sink.wait_for_count(1)) == 1
    own = _bulk_body("estrom-queries-_shared-0", [{"estrom_target": "x"}])
    assert http("POST", judged.url + "/_bulk", own, headers).json()["items"][0]["index"]["status"] == 403


def test_router_down_stores_answers_unchanged_and_counts(
    start_beater: StartService, stack: Stack, engine: EngineHandle, index: str
) -> None:
    own = stack.start_router(f"router-{index}")
    lonely = start_beater(router_url=own.service_url)
    own.stop()
    wait_until(
        lambda: http("GET", lonely.url + "/healthz").json()["router"] == "disconnected", what="router gone"
    )
    resp = http(
        "POST",
        f"{lonely.url}/{index}/_bulk",
        _bulk_body(index, [{"kind": "down", "i": i} for i in range(3)]),
        {"content-type": "application/x-ndjson"},
    )
    assert resp.status == 200
    answer = resp.json()
    assert answer["errors"] is False
    assert [i["index"]["status"] for i in answer["items"]] == [201, 201, 201]
    assert resp.headers["x-estrom-unpublished"] == "3"
    engine_request(engine.url, "POST", f"/{index}/_refresh")
    assert engine_request(engine.url, "GET", f"/{index}/_count")["count"] == 3
    metrics = http("GET", lonely.url + "/metrics").body.decode()
    assert 'estrom_beater_bulk_documents_total{outcome="unpublished"} 3.0' in metrics
    assert 'estrom_beater_bulk_documents_total{outcome="stored"} 3.0' in metrics


def test_engine_down_is_503_and_nothing_stored(start_beater: StartService, index: str) -> None:
    orphan = start_beater(engine_url="http://127.0.0.1:9")
    resp = http(
        "POST",
        orphan.url + "/_bulk",
        _bulk_body(index, [{"kind": "x"}]),
        {"content-type": "application/x-ndjson"},
    )
    assert resp.status == 503
    assert resp.json()["error"] == "unavailable"
    assert resp.headers["retry-after"]


def test_compressed_bulk_and_compressed_answers_asked_for(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    # http_compress: a gzip body and Accept-Encoding: gzip, as Go shippers (Filebeat) ask by default.
    engine_request(engine.url, "PUT", f"/{index}", MAPPING)
    sink = watch(wamp, index)
    client = Elasticsearch([beater.url], http_compress=True, timeout=120)
    actions = ({"_index": index, "_id": f"z{i}", "_source": {"kind": "gz", "n": i}} for i in range(50))
    assert helpers.bulk(client, actions, stats_only=True) == (50, 0)
    client.close()
    hits = sink.wait_for_count(50)
    assert sorted(h["_id"] for h in hits) == sorted(f"z{i}" for i in range(50))
