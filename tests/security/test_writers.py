"""Writers as principals, on every write path of a real beater: ingest, the bulk API, the pass-through.

A beater started with an access file naming one writer (``shipper``, who
may write ``wlogs-*``) and an anonymous writer of ``wscratch-*``: every way
in is tried with the right credential, a wrong one, none, and a target
outside the writer's, and estrom's own indices are tried by everyone.
"""

from __future__ import annotations

import base64
import json
import socket
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest

from common.access.tokens import token_hash
from tests.data_streams import put_data_stream_template
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle, StartService

pytestmark = pytest.mark.integration

TOKEN = "shipper-token-" + uuid.uuid4().hex
RUN = uuid.uuid4().hex[:8]
OWN = f"wlogs-{RUN}"
OTHER = f"payroll-{RUN}"
SCRATCH = f"wscratch-{RUN}"


@pytest.fixture
def writers_beater(start_beater: StartService, tmp_path: Path) -> ServiceHandle:
    access = tmp_path / "access.json"
    access.write_text(
        json.dumps(
            {
                "writers": [{"name": "shipper", "token": token_hash(TOKEN), "targets": ["wlogs-*"]}],
                "anonymous_writer": {"targets": ["wscratch-*"]},
            }
        )
    )
    return start_beater(ESTROM_ACCESS=str(access))


def bulk(
    url: str, lines: list[dict[str, Any]], headers: dict[str, str] | None = None, path: str = "/_bulk"
) -> Any:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return http("POST", url + path, body, {"content-type": "application/x-ndjson", **(headers or {})})


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic(name: str, token: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}


def stored(engine: EngineHandle, index: str, doc_id: str) -> bool:
    return http("GET", f"{engine.url}/{index}/_doc/{doc_id}").status == 200


@pytest.mark.parametrize(
    "headers",
    [
        bearer("wrong-token-0123456789"),
        basic("shipper", "wrong-token-0123456789"),
        basic("other", TOKEN),
        {"authorization": "Basic !!"},
    ],
    ids=["wrong-bearer", "wrong-basic", "basic-other-name", "malformed"],
)
def test_a_credential_that_is_nobodys_is_401_and_never_forwarded(
    writers_beater: ServiceHandle, engine: EngineHandle, headers: dict[str, str]
) -> None:
    doc_id = uuid.uuid4().hex
    resp = bulk(writers_beater.url, [{"index": {"_index": OWN, "_id": doc_id}}, {"k": 1}], headers)
    assert resp.status == 401, resp.body
    assert resp.json()["error"]
    engine_request(engine.url, "POST", "/_refresh")
    assert not stored(engine, OWN, doc_id)
    ingest = http(
        "POST",
        f"{writers_beater.url}/api/v0.1/ingest/{OWN}",
        "{}",
        {"content-type": "application/json", **headers},
    )
    assert ingest.status == 401


@pytest.mark.parametrize("headers", [bearer(TOKEN), basic("shipper", TOKEN)], ids=["bearer", "basic"])
def test_a_writer_writes_its_targets_and_gets_403_items_elsewhere(
    writers_beater: ServiceHandle, engine: EngineHandle, headers: dict[str, str]
) -> None:
    ids = [uuid.uuid4().hex for _ in range(3)]
    resp = bulk(
        writers_beater.url,
        [
            {"index": {"_index": OWN, "_id": ids[0]}},
            {"k": 1},
            {"index": {"_index": OTHER, "_id": ids[1]}},
            {"k": 2},
            {"create": {"_index": OWN, "_id": ids[2]}},
            {"k": 3},
        ],
        headers,
    )
    assert resp.status == 200, resp.body
    answer = resp.json()
    assert answer["errors"] is True
    statuses = [next(iter(item.values()))["status"] for item in answer["items"]]
    assert statuses == [201, 403, 201]
    refused = answer["items"][1]["index"]
    assert refused["_index"] == OTHER
    assert refused["error"]["type"] == "security_exception"
    engine_request(engine.url, "POST", "/_refresh")
    assert stored(engine, OWN, ids[0])
    assert stored(engine, OWN, ids[2])
    assert not stored(engine, OTHER, ids[1])


def test_the_paths_default_target_is_checked_too(writers_beater: ServiceHandle, engine: EngineHandle) -> None:
    doc_id = uuid.uuid4().hex
    resp = bulk(
        writers_beater.url, [{"index": {"_id": doc_id}}, {"k": 1}], bearer(TOKEN), path=f"/{OTHER}/_bulk"
    )
    assert resp.status == 200
    assert resp.json()["items"][0]["index"]["status"] == 403
    # Every item refused, the engine never asked: its filter_path applied all the same (libbeat's).
    filtered = bulk(
        writers_beater.url,
        [{"index": {"_id": doc_id}}, {"k": 1}],
        bearer(TOKEN),
        path=f"/{OTHER}/_bulk?filter_path=errors,items.*.error,items.*.status",
    ).json()
    assert filtered["errors"] is True
    assert list(filtered["items"][0]["index"]) == ["status", "error"]
    assert filtered["items"][0]["index"]["status"] == 403
    engine_request(engine.url, "POST", "/_refresh")
    assert not stored(engine, OTHER, doc_id)


def test_anonymous_writes_only_its_own_targets(writers_beater: ServiceHandle, engine: EngineHandle) -> None:
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    resp = bulk(
        writers_beater.url,
        [
            {"index": {"_index": SCRATCH, "_id": ids[0]}},
            {"k": 1},
            {"index": {"_index": OWN, "_id": ids[1]}},
            {"k": 2},
        ],
    )
    assert resp.status == 200
    assert [next(iter(i.values()))["status"] for i in resp.json()["items"]] == [201, 403]
    assert (
        http(
            "POST", f"{writers_beater.url}/api/v0.1/ingest/{OWN}", "{}", {"content-type": "application/json"}
        ).status
        == 403
    )
    assert (
        http(
            "POST",
            f"{writers_beater.url}/api/v0.1/ingest/{SCRATCH}",
            "{}",
            {"content-type": "application/json"},
        ).status
        == 200
    )


@pytest.mark.parametrize("name", ["estrom-queries-_shared-0", ".kibana", "<estrom-queries-{now/d}>"])
def test_estroms_own_and_hidden_indices_are_nobodys(
    engine: EngineHandle, beater: ServiceHandle, name: str
) -> None:
    """The open default (anonymous writes everything) still never reaches them, by bulk or ingest."""
    doc_id = uuid.uuid4().hex
    resp = bulk(beater.url, [{"index": {"_index": name, "_id": doc_id}}, {"estrom_target": "payroll"}])
    assert resp.status == 200
    item = resp.json()["items"][0]["index"]
    assert item["status"] == 403, item
    if not name.startswith("<"):
        ingest = http(
            "POST", f"{beater.url}/api/v0.1/ingest/{name}", "{}", {"content-type": "application/json"}
        )
        assert ingest.status in (400, 403), ingest.body


def test_bulk_update_answers_never_carry_the_stored_document(
    beater: ServiceHandle, engine: EngineHandle
) -> None:
    index = f"secret-{RUN}"
    engine_request(engine.url, "PUT", f"/{index}/_doc/probe?refresh=true", {"salary": 123456})
    for path, action in [
        ("/_bulk", {"update": {"_index": index, "_id": "probe", "_source": True}}),
        ("/_bulk?_source=true", {"update": {"_index": index, "_id": "probe"}}),
    ]:
        resp = bulk(beater.url, [action, {"doc": {"seen": True}, "_source": True}], path=path)
        assert resp.status == 200, resp.body
        item = resp.json()["items"][0]["update"]
        assert item["status"] == 200
        assert "get" not in item, item
        assert b"123456" not in resp.body


def test_templates_stay_inside_the_writers_targets(
    writers_beater: ServiceHandle, engine: EngineHandle
) -> None:
    url = writers_beater.url
    headers = {"content-type": "application/json", **bearer(TOKEN)}
    # Patterns outside, or an alias outside (the route by which readers of public-* would read payroll).
    for name, body in [
        (f"leak-{RUN}", {"index_patterns": ["payroll-2*"], "aliases": {"wlogs-alias": {}}}),
        (f"leak2-{RUN}", {"index_patterns": ["wlogs-2*"], "aliases": {"public-leak": {}}}),
        (f"own-{RUN}", {"index_patterns": ["estrom-queries-*"]}),
    ]:
        resp = http("PUT", f"{url}/_template/{name}", json.dumps(body), headers)
        assert resp.status == 403, (name, resp.body)
        assert http("GET", f"{engine.url}/_template/{name}").status == 404
    good = {"index_patterns": [f"wlogs-{RUN}-*"], "aliases": {f"wlogs-{RUN}-all": {}}}
    assert http("PUT", f"{url}/_template/ok-{RUN}", json.dumps(good), headers).status == 200
    # Another's template of the same name is not the writer's to replace.
    engine_request(engine.url, "PUT", f"/_template/admins-{RUN}", {"index_patterns": ["payroll-*"]})
    replace = {"index_patterns": [f"wlogs-{RUN}-*"]}
    assert http("PUT", f"{url}/_template/admins-{RUN}", json.dumps(replace), headers).status == 403
    assert (
        http("PUT", f"{url}/_component_template/c-{RUN}", json.dumps({"template": {}}), headers).status == 403
    )


def test_an_alias_inside_the_targets_that_writes_outside_them_is_refused(
    writers_beater: ServiceHandle, engine: EngineHandle
) -> None:
    redirect = f"wlogs-redirect-{RUN}"
    engine_request(engine.url, "PUT", f"/{OTHER}-behind", {"aliases": {redirect: {"is_write_index": True}}})
    doc_id = uuid.uuid4().hex
    resp = bulk(writers_beater.url, [{"index": {"_index": redirect, "_id": doc_id}}, {"k": 1}], bearer(TOKEN))
    assert resp.status == 200
    item = resp.json()["items"][0]["index"]
    assert item["status"] == 403
    assert "alias" in item["error"]["reason"]
    ingest = http(
        "POST",
        f"{writers_beater.url}/api/v0.1/ingest/{redirect}",
        "{}",
        {"content-type": "application/json", **bearer(TOKEN)},
    )
    assert ingest.status == 403
    engine_request(engine.url, "POST", "/_refresh")
    assert engine_request(engine.url, "GET", f"/{OTHER}-behind/_count")["count"] == 0


@pytest.mark.parametrize("path", ["/_bulk", f"/api/v0.1/ingest/{OWN}"])
def test_a_refused_credential_is_answered_before_any_of_the_body_is_read(
    writers_beater: ServiceHandle, path: str
) -> None:
    """Headers announcing 50 MB, and no byte of it sent: the 401 comes all the same."""
    url = urllib.parse.urlsplit(writers_beater.url)
    with socket.create_connection((url.hostname, url.port), timeout=20) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\n"
            f"Authorization: Bearer wrong-token-0123456789\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    assert b"www-authenticate: bearer" in answer.lower()


def test_libbeats_ilm_set_up_passes_inside_the_writers_targets_only(
    writers_beater: ServiceHandle, engine: EngineHandle
) -> None:
    """The write alias's first index, as libbeat creates it: ``GET /_alias/<alias>`` (Logstash:
    ``HEAD /<alias>``), then ``PUT /<alias-{now/d}-000001>`` with the alias; then writes through it."""
    headers = {"content-type": "application/json", **bearer(TOKEN)}
    alias = f"wlogs-{RUN}-ilm"
    assert http("GET", f"{writers_beater.url}/_alias/{alias}", headers=headers).status == 404
    assert http("HEAD", f"{writers_beater.url}/{alias}", headers=headers).status == 404  # Logstash's check
    first = urllib.parse.quote(f"<{alias}-{{now/d}}-000001>", safe="")
    body = json.dumps({"aliases": {alias: {"is_write_index": True}}})
    created = http("PUT", f"{writers_beater.url}/{first}", body, headers)
    assert created.status == 200, created.body
    assert http("GET", f"{writers_beater.url}/_alias/{alias}", headers=headers).status == 200
    assert http("HEAD", f"{writers_beater.url}/{alias}", headers=headers).status == 200
    doc_id = uuid.uuid4().hex
    resp = bulk(writers_beater.url, [{"create": {"_index": alias, "_id": doc_id}}, {"k": 1}], bearer(TOKEN))
    assert resp.json()["items"][0]["create"]["status"] == 201, resp.body
    # Outside: another's index, an alias readers of public-* would follow, another's alias.
    assert http("PUT", f"{writers_beater.url}/{OTHER}-new", "{}", headers).status == 403
    leak = json.dumps({"aliases": {"public-leak": {}}})
    assert http("PUT", f"{writers_beater.url}/wlogs-{RUN}-leaky", leak, headers).status == 403
    assert http("GET", f"{writers_beater.url}/_alias/{OTHER}", headers=headers).status == 403
    assert http("HEAD", f"{writers_beater.url}/{OTHER}", headers=headers).status == 403
    assert http("GET", f"{writers_beater.url}/{alias}", headers=headers).status == 404  # no reads
    assert http("GET", f"{engine.url}/wlogs-{RUN}-leaky").status == 404


def test_data_streams_are_written_by_their_name_inside_the_targets_only(
    writers_beater: ServiceHandle, engine: EngineHandle
) -> None:
    """A data stream inside the writer's targets takes its ``create``s (stored in the hidden
    backing index, judged by the stream's name); one outside is refused item by item."""
    put_data_stream_template(engine.url, f"wds-{RUN}", f"wlogs-ds-{RUN}*")
    put_data_stream_template(engine.url, f"pds-{RUN}", f"payroll-ds-{RUN}*")
    inside, outside = f"wlogs-ds-{RUN}", f"payroll-ds-{RUN}"
    stamp = {"@timestamp": "2026-12-06T00:00:00Z", "k": 1}
    resp = bulk(
        writers_beater.url,
        [{"create": {"_index": inside}}, stamp, {"create": {"_index": outside}}, stamp],
        bearer(TOKEN),
    )
    items = [item["create"] for item in resp.json()["items"]]
    assert [i["status"] for i in items] == [201, 403], items
    assert items[0]["_index"].startswith(".ds-")
    ingest = http(
        "POST",
        f"{writers_beater.url}/api/v0.1/ingest/{inside}",
        json.dumps(stamp),
        {"content-type": "application/json", **bearer(TOKEN)},
    )
    assert ingest.status == 200, ingest.body
    refused = http(
        "POST",
        f"{writers_beater.url}/api/v0.1/ingest/{outside}",
        json.dumps(stamp),
        {"content-type": "application/json", **bearer(TOKEN)},
    )
    assert refused.status == 403
