"""Query and ingest limits through the real RPC, tailor and beater: each refusal names its limit."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError

from common import contract
from common.config import Settings
from common.query.limits import QueryLimits
from devstack.wamp_client import WampClient
from tests.http_client import http, ingest
from tests.real_stack import StartService
from tests.tailor.tail_client import docs_path


def rpc_refusal(wamp: WampClient, index: str, query: Any) -> str:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", index, query)
    assert err.value.error == contract.INVALID_QUERY.uri
    return str(err.value.args[0])


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"script": {"script": {"source": "true"}}}, "'script' is not allowed"),
        ({"wrapper": {"query": "eyJtYXRjaF9hbGwiOnt9fQ=="}}, "'wrapper'"),
        ({"terms": {"user": {"index": "users", "id": "1", "path": "f"}}}, "terms lookup"),
        (
            {"bool": {"filter": [{"has_parent": {"parent_type": "p", "query": {"match_all": {}}}}]}},
            "'has_parent'",
        ),
        ("x" * (QueryLimits.max_bytes + 1), "ESTROM_QUERY_MAX_BYTES"),
        ("NOT " * 100 + "a", "ESTROM_QUERY_MAX_DEPTH"),
        (" OR ".join(f"t{i}" for i in range(QueryLimits.max_clauses + 1)), "ESTROM_QUERY_MAX_CLAUSES"),
    ],
)
def test_register_query_refuses_with_the_limit_named(
    wamp: WampClient, index: str, query: Any, words: str
) -> None:
    assert words in rpc_refusal(wamp, index, query)


def test_queries_within_the_limits_register(wamp: WampClient, index: str) -> None:
    for query in ("level:error AND /ab+c/ AND *rror", {"bool": {"must": [{"match": {"m": "x"}}]}}):
        assert len(wamp.call("com.estrom.register_query", index, query)) == 16


def tail_refusal(tailor_url: str, params: dict[str, Any]) -> dict[str, Any]:
    resp = http("GET", tailor_url + docs_path(params))
    assert resp.status == 400, resp.body
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert body["error"] == "invalid_query"
    return body


def test_the_tailor_refuses_forbidden_queries_before_registering(tailor: Any, index: str) -> None:
    assert "'script_score'" in tail_refusal(tailor.url, {"i": index, "q": {"script_score": {}}})["reason"]
    deep = '{"a":' + "[" * 1500 + "]" * 1500 + "}"  # past the JSON parser's recursion, not the URL limit
    assert tail_refusal(tailor.url, {"i": index, "q": deep})["reason"]


def test_tailor_limits_are_configurable(start_tailor: StartService, index: str) -> None:
    small = start_tailor(ESTROM_QUERY_MAX_BYTES="64", ESTROM_QUERY_MAX_CLAUSES="3")
    assert "ESTROM_QUERY_MAX_BYTES" in tail_refusal(small.url, {"i": index, "q": "y" * 65})["reason"]
    assert "ESTROM_QUERY_MAX_CLAUSES" in tail_refusal(small.url, {"i": index, "q": "a b c d"})["reason"]


def test_query_limit_settings() -> None:
    env = {"ESTROM_QUERY_MAX_BYTES": "10", "ESTROM_QUERY_MAX_DEPTH": "3", "ESTROM_QUERY_MAX_CLAUSES": "2"}
    assert Settings.from_env(env).query_limits() == QueryLimits(10, 3, 2)
    assert Settings.from_env({}).query_limits() == QueryLimits()


def nested(levels: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"leaf": "x"}
    for _ in range(levels - 1):
        doc = {"o": doc}
    return doc


def test_a_too_deep_document_is_rejected_alone(beater: Any, index: str) -> None:
    resp = ingest(beater.url, index, [{"ok": 1}, nested(21), nested(20)])
    assert resp.status == 200, resp.body
    answer = resp.json()
    assert answer["accepted"] == 2
    assert [r["position"] for r in answer["rejected"]] == [1]
    assert "ESTROM_INGEST_MAX_DEPTH" in answer["rejected"][0]["reason"]


def test_too_many_documents_in_one_request_is_413(start_beater: StartService, index: str) -> None:
    small = start_beater(ESTROM_INGEST_MAX_DOCS="3", ESTROM_INGEST_MAX_DEPTH="2")
    for content_type in ("application/json", "application/x-ndjson"):
        resp = ingest(small.url, index, [{"a": i} for i in range(4)], content_type=content_type)
        assert resp.status == 413, resp.body
        assert resp.json()["error"] == "too_many_documents"
        assert "ESTROM_INGEST_MAX_DOCS" in resp.json()["reason"]
    ok = ingest(small.url, index, [{"a": 1}, {"b": {"c": {}}}, {"d": {"e": 1}}])
    assert ok.status == 200, ok.body
    assert ok.json()["accepted"] == 2  # the depth limit is configurable too


def test_bodies_twisted_would_refuse_get_json_errors(beater: Any, tailor: Any, index: str) -> None:
    resp = http(
        "POST",
        f"{beater.url}/api/v0.1/ingest/{index}",
        b"{}",
        {"content-type": "multipart/form-data; boundary=x"},
    )
    assert resp.status == 415
    assert resp.json()["error"] == "unsupported_media_type"
    for service in (beater, tailor):
        with socket.create_connection((service.host, service.port), timeout=10) as s:
            s.sendall(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = s.makefile("rb").read()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 414"), head
        assert json.loads(body)["error"] == "request_too_long"
        with socket.create_connection((service.host, service.port), timeout=10) as s:
            s.sendall(b"GET / HTTP/1.1\r\nno colon here\r\n\r\n")
            answer = s.makefile("rb").read()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), head
        assert json.loads(body)["error"] == "bad_request"
