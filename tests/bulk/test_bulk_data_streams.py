"""A data stream written through the bulk API: matched by its name, by patterns and by the backing index.

A shipper (Filebeat, Elastic Agent, Vector) writes ``create`` actions to a
data stream's name; the engine stores them in the backing index and reports
that one (``.ds-<stream>-000001``) in each item. Queries registered on the
stream's name and on a pattern matching it get the documents, percolated
under the backing index: each hit has the ``_index`` and ``_id`` the engine
reported (a target cannot name a ``.ds-`` index itself: names starting with
``.`` are refused as hidden or system ones), from
the very bulk that created the stream and after a rollover to a new backing
index (the beater's lifecycle sweeps are slowed down here so that they
cannot be what made the stream known). Data streams exist on OpenSearch; on
an engine without them (Elasticsearch 7.17 OSS) the test skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.metrics_page import metric
from devstack.wamp_client import WampClient
from tests.data_streams import put_data_stream_template
from tests.http_client import Response, engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

NDJSON = {"content-type": "application/x-ndjson"}


@pytest.fixture
def stream(engine: EngineHandle, index: str) -> Iterator[str]:
    """A data stream template for ``<index>-*``; the stream itself is created by the first bulk."""
    put_data_stream_template(engine.url, index, f"{index}-*")
    name = f"{index}-app-default"
    yield name
    http("DELETE", f"{engine.url}/_data_stream/{name}")
    http("DELETE", f"{engine.url}/_index_template/{index}")


def bulk(beater: ServiceHandle, path: str, lines: list[dict[str, Any]]) -> Response:
    body = "".join(json.dumps(line) + "\n" for line in lines)
    resp = http("POST", beater.url + path, body, NDJSON)
    assert resp.status == 200, resp.body
    assert resp.json()["errors"] is False, resp.body
    return resp


def reported(resp: Response) -> list[tuple[str, str]]:
    """``(_index, _id)`` of each item, as the engine reported them."""
    return [(i["create"]["_index"], i["create"]["_id"]) for i in resp.json()["items"]]


def doc(n: int) -> dict[str, Any]:
    return {"@timestamp": f"2026-12-01T00:00:0{n}Z", "kind": "ds", "n": n}


def test_a_data_stream_write_is_matched_by_its_name_its_patterns_and_its_backing_index(
    start_beater: StartService, engine: EngineHandle, wamp: WampClient, index: str, stream: str
) -> None:
    beater = start_beater(ESTROM_QUERY_SWEEP_INTERVAL="600")
    backing1 = f".ds-{stream}-000001"
    targets = {
        "name": stream,
        "pattern": f"{index}-*",
        "other": f"{index}-other-*",
    }
    sids = {k: wamp.call("com.estrom.register_query", t, "kind:ds") for k, t in targets.items()}
    sinks = {k: wamp.subscribe(f"docs-for-{sid}") for k, sid in sids.items()}

    # The first bulk creates the stream: the beater has never seen it.
    first = bulk(
        beater,
        "/_bulk",
        [{"create": {"_index": stream}}, doc(1), {"create": {"_index": stream}}, doc(2)],
    )
    assert [i for i, _ in reported(first)] == [backing1, backing1]
    # An action without _index, written to the path's target (the stream's name).
    second = bulk(beater, f"/{stream}/_bulk", [{"create": {}}, doc(3)])
    expected = [(i, d, n) for (i, d), n in zip(reported(first) + reported(second), (1, 2, 3), strict=True)]
    for key in ("name", "pattern"):
        hits = sinks[key].wait_for_count(3)
        assert [(h["_index"], h["_id"], h["_source"]["n"]) for h in hits] == expected, key

    # A rollover: a new backing index, reported by the next bulk, matched the same way.
    engine_request(engine.url, "POST", f"/{stream}/_rollover")
    third = bulk(beater, "/_bulk", [{"create": {"_index": stream}}, doc(4)])
    ((backing2, id4),) = reported(third)
    assert backing2 == f".ds-{stream}-000002"
    for key in ("name", "pattern"):
        hits = sinks[key].wait_for_count(4)
        assert (hits[-1]["_index"], hits[-1]["_id"], hits[-1]["_source"]["n"]) == (backing2, id4, 4), key

    # Every stored document published (acknowledged by the router): the unrelated pattern got none.
    wait_until(
        lambda: metric(beater.url, "estrom_beater_bulk_documents_total", outcome="published") >= 4,
        what="the four documents published",
    )
    assert metric(beater.url, "estrom_beater_query_matches_total", sid=sids["other"]) == 0
    assert sinks["other"].hits == []
