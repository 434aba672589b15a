"""The streaming-bulk case both client families run: mixed actions through estrom and straight to the engine.

``check_streaming_bulk`` writes the same mixed actions (index, create,
update, delete; a 409, a mapping conflict, a 404) once through the beater
and once to the engine with a client's own ``helpers.streaming_bulk``: the
answers are the same item for item (the per-item failures passed back
unchanged), the stored documents are the same, and what ``index``/``create``
stored reaches a subscriber with the ``_index``/``_id`` the engine reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from devstack.wamp_client import EventSink, WampClient
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle

#: ``streaming_bulk(client, actions, **options)`` of elasticsearch-py or opensearch-py.
StreamingBulk = Callable[..., Iterator[tuple[bool, dict[str, Any]]]]


def engine_family(engine: EngineHandle) -> str:
    """``"opensearch"`` or ``"elasticsearch"``, from the engine's own ``GET /``."""
    version = http("GET", engine.url + "/").json()["version"]
    return "opensearch" if version.get("distribution") == "opensearch" else "elasticsearch"


MAPPING = {"mappings": {"properties": {"n": {"type": "long"}, "kind": {"type": "keyword"}}}}


def watch(wamp: WampClient, index: str) -> EventSink:
    sid = wamp.call("com.estrom.register_query", index, "_exists_:kind")
    return wamp.subscribe(f"docs-for-{sid}")


def mixed_actions(index: str) -> list[dict[str, Any]]:
    return [
        {"_op_type": "index", "_index": index, "_id": "a", "_source": {"kind": "k", "n": 1}},
        {"_op_type": "create", "_index": index, "_id": "b", "_source": {"kind": "k", "n": 2}},
        {"_op_type": "index", "_index": index, "_source": {"kind": "k", "n": 3, "auto": True}},
        {"_op_type": "update", "_index": index, "_id": "a", "doc": {"kind": "k", "n": 10}},
        {"_op_type": "create", "_index": index, "_id": "b", "_source": {"kind": "k", "n": 20}},  # 409
        {"_op_type": "index", "_index": index, "_id": "c", "_source": {"kind": "k", "n": "not a number"}},
        {"_op_type": "index", "_index": index, "_id": "d", "_source": {"kind": "k", "n": 4}},
        {"_op_type": "delete", "_index": index, "_id": "d"},
        {"_op_type": "delete", "_index": index, "_id": "never"},  # 404
    ]


def comparable(item: dict[str, Any], index: str) -> dict[str, Any]:
    """An answer item without what differs between two indices (and an id the engine chose)."""
    ((op, result),) = item.items()
    assert result["_index"] == index
    out = {k: v for k, v in result.items() if k not in ("_index", "_seq_no", "_primary_term")}
    if out.get("_id") not in ("a", "b", "c", "d", "never"):
        out.pop("_id", None)
    if "error" in out:
        out["error"] = out["error"]["type"]  # its reason names the index
    return {op: out}


def stored(engine: EngineHandle, index: str) -> list[dict[str, Any]]:
    engine_request(engine.url, "POST", f"/{index}/_refresh")
    found = engine_request(engine.url, "GET", f"/{index}/_search?size=100&sort=n")
    return [
        {"_id": h["_id"] if not h["_source"].get("auto") else "auto", "_source": h["_source"]}
        for h in found["hits"]["hits"]
    ]


def check_streaming_bulk(
    client_for: Callable[[str], Any],
    streaming_bulk: StreamingBulk,
    beater: ServiceHandle,
    engine: EngineHandle,
    wamp: WampClient,
    index: str,
) -> None:
    """The case itself; ``client_for(url)`` makes the client (closed here)."""
    through, direct = index + "-through", index + "-direct"
    for name in (through, direct):
        engine_request(engine.url, "PUT", f"/{name}", MAPPING)
    sink = watch(wamp, through)
    results = {}
    for name, url in ((through, beater.url), (direct, engine.url)):
        client = client_for(url)
        actions: Iterable[dict[str, Any]] = mixed_actions(name)
        results[name] = list(streaming_bulk(client, actions, raise_on_error=False, raise_on_exception=False))
        client.close()
    assert [ok for ok, _ in results[through]] == [ok for ok, _ in results[direct]]
    assert [comparable(i, through) for _, i in results[through]] == [
        comparable(i, direct) for _, i in results[direct]
    ]
    failed = [item for ok, item in results[through] if not ok]
    assert [next(iter(i.values()))["status"] for i in failed] == [409, 400, 404]
    assert next(iter(failed[1].values()))["error"]["type"] == "mapper_parsing_exception"
    assert stored(engine, through) == stored(engine, direct)

    # index/create stored a, b, the auto-id document and d, the update stored a again: each
    # published as stored, with the engine's _index/_id, and no answer carries a stored document.
    auto_id = results[through][2][1]["index"]["_id"]
    hits = sink.wait_for_count(5)
    assert [(h["_index"], h["_id"], h["_source"]["n"]) for h in hits] == [
        (through, "a", 1),
        (through, "b", 2),
        (through, auto_id, 3),
        (through, "a", 10),
        (through, "d", 4),
    ]
    assert all("get" not in item.get("update", {}) for _, item in results[through])
