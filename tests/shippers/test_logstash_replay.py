"""Logstash 8's ``elasticsearch`` output pointed at the beater, replayed request for request.

Logstash cannot be installed on the test machine, so
``tests/shippers/logstash/`` replays what
logstash-output-elasticsearch (the 11.x/12.x line Logstash 8.x ships) sends
with its default configuration, ``elasticsearch { hosts => "<beater>" }``
(plus ``user``/``password`` against a beater with writers), and reacts to
each answer as the plugin's code does. Its docstring names the plugin's
source files the sequence comes from; in short:

1. ``HEAD /`` (the pool's health check), ``GET /`` (version, and from 7.14
   the ``X-Elastic-Product: Elasticsearch`` header), ``GET /_license``
   (``active``, or the connection stays dead), ``GET /`` (cluster uuid);
2. with Logstash 8's defaults (``pipeline.ecs_compatibility: v8``,
   ``data_stream`` unset) the output writes the data stream
   ``logs-generic-default``: no template, no ILM;
   ``POST /_bulk?filter_path=errors,items.*.error,items.*.status``, gzipped
   (``Content-Type: application/json``), ``create`` actions with ``"_id":
   null`` and ``"routing": null``;
3. per item: 200/201 done, 409 dropped, 400/404 to the dead letter queue,
   anything else (429, 403, 5xx) resent alone, forever.

With ``ecs_compatibility => disabled`` (Logstash 7's naming) ``ilm_enabled
=> auto`` resolves to on against Elasticsearch 7 (the 11.x line no longer
asks ``_xpack``): the ``logstash`` legacy template carries
``index.lifecycle.*`` settings, which the test engine (Elasticsearch 7.17
without its ILM module) refuses with 400, and Logstash stops the pipeline.
With ``ilm_enabled => false`` too, events go to ``logstash-%{+yyyy.MM.dd}``
under the ``logstash`` template.

The ILM set-up's first question, ``HEAD /logstash`` (is the rollover alias
there?), is passed to the engine for a name inside the writer's targets.

A per-item 429 cannot be produced honestly here (it needs an engine whose
write queue is full); the retry path is replayed on the beater's own
per-item 403 for a target outside the writer's, which ``submit`` treats
exactly as a 429: resent alone, again and again.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.access.tokens import token_hash
from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import engine_family
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.shippers.logstash.bootstrap import BootstrapFailed, ConfigurationError
from tests.shippers.logstash.bulk import BULK_PATH, LogstashOutput
from tests.shippers.logstash.transport import OutputConfig
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

#: The start-up every configuration begins with (pool.rb, license_checker.rb, common.rb).
HANDSHAKE = [("HEAD", "/", 200), ("GET", "/", 200), ("GET", "/_license", 200), ("GET", "/", 200)]
WRITER, WRITER_TOKEN = "logstash_writer", "logstash-token-" + uuid.uuid4().hex


@pytest.fixture(autouse=True)
def elasticsearch_only(engine: EngineHandle) -> None:
    if engine_family(engine) != "elasticsearch":
        # pool.rb's elasticsearch?: OpenSearch's GET / is no Elasticsearch 6.0+ to the plugin.
        pytest.skip("Logstash's elasticsearch output refuses OpenSearch (its product check)")


@pytest.fixture
def token() -> str:
    """A word only this test's events carry, to follow and find them on shared targets."""
    return "lsreplay" + uuid.uuid4().hex[:12]


def now() -> str:
    """A Logstash @timestamp as the JSON of an event carries it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def ecs_v8_event(message: str, **fields: Any) -> dict[str, Any]:
    """An event as a Logstash 8 input makes it with ECS v8 (a line from ``stdin``)."""
    return {
        "@timestamp": now(),
        "message": message,
        "@version": "1",
        "event": {"original": message},
        "host": {"hostname": socket.gethostname()},
        **fields,
    }


def legacy_event(message: str) -> dict[str, Any]:
    """The same line with ``ecs_compatibility => disabled``."""
    return {"@timestamp": now(), "message": message, "@version": "1", "host": socket.gethostname()}


def follow(tailor: ServiceHandle, target: str, token: str) -> Tail:
    tail = Tail(tailor.url, {"i": target, "q": f"message:{token}", "format": "ndjson"})
    assert tail.status == 200, tail.body
    return tail


def stored(engine: EngineHandle, target: str, token: str) -> dict[str, str]:
    """``_id`` -> message of what the engine holds with ``token``, in ``target``."""
    engine_request(engine.url, "POST", f"/{target}/_refresh")
    found = engine_request(engine.url, "GET", f"/{target}/_search?size=100&q=message:{token}")
    return {h["_id"]: h["_source"]["message"] for h in found["hits"]["hits"]}


def without_template(engine: EngineHandle, name: str) -> None:
    resp = http("DELETE", f"{engine.url}/_template/{name}")
    assert resp.status in (200, 404), resp.body


@pytest.fixture
def logstash_template(engine: EngineHandle) -> Iterator[None]:
    """The engine without a ``logstash`` template before and after: the plugin installs it once."""
    without_template(engine, "logstash")
    yield
    without_template(engine, "logstash")


def bulk_lines(output: LogstashOutput, n: int = 0) -> list[Any]:
    bulk = [e for e in output.exchanges if e.method == "POST"][n]
    assert bulk.body is not None
    return [json.loads(line) for line in bulk.body.decode().splitlines()]


def test_the_default_output_starts_ships_and_every_event_is_tailed_published_and_stored(
    beater: ServiceHandle, tailor: ServiceHandle, engine: EngineHandle, wamp: WampClient, token: str
) -> None:
    tail = follow(tailor, "logs-generic-*", token)
    sink = wamp.subscribe(
        f"docs-for-{wamp.call('com.estrom.register_query', 'logs-generic-*', f'message:{token}')}"
    )
    output = LogstashOutput(OutputConfig(hosts=beater.url))
    try:
        output.register()
        assert [e.line for e in output.exchanges] == HANDSHAKE
        root = output.exchanges[1]
        assert root.response_headers["x-elastic-product"] == "Elasticsearch"
        assert output.es_version
        assert output.es_version.startswith("7.")
        assert output.cluster_uuid == root.json()["cluster_uuid"]
        assert output.data_stream
        assert not output.ilm_in_use
        assert output.template_endpoint is None

        events = [ecs_v8_event(f"{token} request {n} served") for n in range(3)]
        sent = output.multi_receive(events)
        hits = tail.wait_hits(3, timeout=30)
        published = sink.wait_for_count(3, timeout=30)
    finally:
        tail.close()
        output.close()

    (round_,) = sent.rounds
    bulk = round_.exchange
    assert (bulk.method, bulk.path, bulk.status) == ("POST", BULK_PATH, 200)
    assert bulk.headers["Content-Encoding"] == "gzip"
    assert bulk.headers["Content-Type"] == "application/json"
    assert bulk.headers["X-Elastic-Event-Count"] == "3"
    assert bulk_lines(output)[0] == {
        "create": {"_id": None, "_index": "logs-generic-default", "routing": None}
    }
    # The engine's own answer to filter_path=errors,items.*.error,items.*.status, and nothing lost.
    assert bulk.json() == {"errors": False, "items": [{"create": {"status": 201}}] * 3}
    assert "x-estrom-unpublished" not in bulk.response_headers
    assert round_.succeeded == [0, 1, 2]
    assert sent.pending == []

    messages = [e["message"] for e in events]
    assert [h["_source"]["message"] for h in hits] == messages
    assert {h["_index"] for h in hits} == {"logs-generic-default"}
    assert all(
        h["_source"]["data_stream"] == {"type": "logs", "dataset": "generic", "namespace": "default"}
        for h in hits
    )
    assert sorted(e["_source"]["message"] for e in published) == messages
    assert stored(engine, "logs-generic-default", token) == {h["_id"]: h["_source"]["message"] for h in hits}


@pytest.fixture
def writers_beater(start_beater: StartService, tmp_path: Path) -> ServiceHandle:
    """A beater whose only writer may write Logstash's default data stream (``logs-generic-*``)."""
    access = tmp_path / "access.json"
    access.write_text(
        json.dumps(
            {"writers": [{"name": WRITER, "token": token_hash(WRITER_TOKEN), "targets": ["logs-generic-*"]}]}
        )
    )
    return start_beater(ESTROM_ACCESS=str(access))


def test_a_writer_logs_in_on_every_request_and_items_are_retried_dropped_or_kept_as_logstash_decides(
    writers_beater: ServiceHandle, tailor: ServiceHandle, engine: EngineHandle, token: str
) -> None:
    wrong = LogstashOutput(
        OutputConfig(hosts=writers_beater.url, user=WRITER, password="not-the-token-0123456789")
    )
    with pytest.raises(ConfigurationError, match="check the credentials"):
        wrong.register()
    wrong.close()
    assert [e.line for e in wrong.exchanges] == [("HEAD", "/", 401), ("GET", "/", 401)]

    field = f"f{token}"
    events = [
        ecs_v8_event(f"{token} first"),
        ecs_v8_event(f"{token} second"),
        ecs_v8_event(f"{token} object", **{field: {"a": 1}}),
        ecs_v8_event(f"{token} conflicting", **{field: "a string"}),  # 400: the field is an object by now
        ecs_v8_event(
            f"{token} routed", data_stream={"dataset": "payroll"}
        ),  # logs-payroll-default: not the writer's
    ]
    tail = follow(tailor, "logs-*", token)
    output = LogstashOutput(OutputConfig(hosts=writers_beater.url, user=WRITER, password=WRITER_TOKEN))
    try:
        output.register()
        sent = output.multi_receive(events, max_rounds=3)
        hits = tail.wait_hits(3, timeout=30)
    finally:
        tail.close()
        output.close()

    assert [e.line for e in output.exchanges[:4]] == HANDSHAKE
    assert all(e.headers["Authorization"].startswith("Basic ") for e in output.exchanges)
    first, *resent = sent.rounds
    assert bulk_lines(output)[8] == {
        "create": {"_id": None, "_index": "logs-payroll-default", "routing": None}
    }
    answer = first.exchange.json()
    assert answer["errors"] is True
    assert [item["create"]["status"] for item in answer["items"]] == [201, 201, 201, 400, 403]
    assert all(set(item["create"]) <= {"status", "error"} for item in answer["items"])  # filter_path kept
    assert answer["items"][4]["create"]["error"]["type"] == "security_exception"
    assert (first.succeeded, first.dead_lettered, first.retried) == ([0, 1, 2], [3], [4])
    # The refused item alone, resent round after round; the 400 never again.
    assert len(resent) == 2
    for round_ in resent:
        assert round_.exchange.headers["X-Elastic-Event-Count"] == "1"
        assert round_.exchange.json()["items"][0]["create"]["status"] == 403
        assert round_.retried == [0]
    assert [a[2]["message"] for a in sent.pending] == [f"{token} routed"]

    kept = [e["message"] for e in events[:3]]
    assert [h["_source"]["message"] for h in hits] == kept
    assert stored(engine, "logs-generic-default", token) == {h["_id"]: h["_source"]["message"] for h in hits}
    assert http("GET", f"{engine.url}/logs-payroll-default/_count?q=message:{token}").status == 404


def test_with_ecs_disabled_ilm_auto_resolves_on_and_the_engine_refuses_its_template(
    beater: ServiceHandle, engine: EngineHandle, logstash_template: None
) -> None:
    output = LogstashOutput(OutputConfig(hosts=beater.url, ecs_compatibility="disabled"))
    with pytest.raises(BootstrapFailed) as failed:
        output.register()
    output.close()
    assert [e.line for e in output.exchanges] == [
        *HANDSHAKE,
        ("HEAD", "/_template/logstash", 404),
        ("PUT", "/_template/logstash", 400),
    ]
    assert output.ilm_in_use is True
    put = output.exchanges[-1]
    assert put.body is not None
    template = json.loads(put.body)
    assert template["index_patterns"] == "logstash-*"
    assert template["settings"]["index.lifecycle.name"] == "logstash-policy"
    assert template["settings"]["index.lifecycle.rollover_alias"] == "logstash"
    # The engine's own refusal, passed through: it has no ILM module to know those settings.
    assert b"unknown setting [index.lifecycle." in put.response
    direct = http("PUT", f"{engine.url}/_template/logstash", put.body, {"content-type": "application/json"})
    assert (direct.status, json.loads(direct.body)["error"]["type"]) == (400, put.json()["error"]["type"])
    assert failed.value.cause is not None


def test_with_ecs_disabled_and_ilm_off_events_go_to_the_dated_index_under_the_logstash_template(
    beater: ServiceHandle, tailor: ServiceHandle, engine: EngineHandle, logstash_template: None, token: str
) -> None:
    tail = follow(tailor, "logstash-*", token)
    output = LogstashOutput(OutputConfig(hosts=beater.url, ecs_compatibility="disabled", ilm_enabled=False))
    try:
        output.register()
        events = [legacy_event(f"{token} line {n}") for n in range(2)]
        sent = output.multi_receive(events)
        hits = tail.wait_hits(2, timeout=30)
    finally:
        tail.close()
        output.close()

    assert [e.line for e in output.exchanges[:6]] == [
        *HANDSHAKE,
        ("HEAD", "/_template/logstash", 404),
        ("PUT", "/_template/logstash", 200),
    ]
    assert output.ilm_in_use is False
    assert not output.data_stream
    day = "logstash-" + datetime.fromisoformat(events[0]["@timestamp"].replace("Z", "+00:00")).strftime(
        "%Y.%m.%d"
    )
    assert bulk_lines(output)[0] == {"index": {"_id": None, "_index": day, "routing": None}}
    assert sent.rounds[0].exchange.json() == {"errors": False, "items": [{"index": {"status": 201}}] * 2}
    assert [h["_source"]["message"] for h in hits] == [e["message"] for e in events]
    assert {h["_index"] for h in hits} == {day}
    assert stored(engine, day, token) == {h["_id"]: h["_source"]["message"] for h in hits}
    installed = engine_request(engine.url, "GET", "/_template/logstash")["logstash"]
    assert installed["index_patterns"] == ["logstash-*"]
    assert installed["version"] == 60001


def test_the_rollover_alias_check_gets_the_engines_answer(
    beater: ServiceHandle, engine: EngineHandle, token: str
) -> None:
    # ilm.rb's maybe_create_rollover_alias asks HEAD /<alias> first: an existing alias is left alone.
    alias = f"lsalias{token}"
    engine_request(engine.url, "PUT", f"/{alias}-000001", {"aliases": {alias: {"is_write_index": True}}})
    output = LogstashOutput(OutputConfig(hosts=beater.url, ecs_compatibility="disabled"))
    try:
        assert output.rollover_alias_exists(alias)
    finally:
        output.close()
        http("DELETE", f"{engine.url}/{alias}-000001")
