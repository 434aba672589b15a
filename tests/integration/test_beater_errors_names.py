"""Names the beater refuses: index names over HTTP and RPC, invalid queries, unknown sids, paths and methods.

Each answers with the contract's error for it, and a refused query is not
stored.
"""

from __future__ import annotations

import pytest
from autobahn.wamp.exception import ApplicationError

from common.query.identity import sid_for
from devstack.wamp_client import WampClient
from tests.http_client import http, ingest
from tests.real_stack import ServiceHandle


@pytest.mark.parametrize("bad", ["Upper", "_under", "-dash", "a*b", "has space", "a,b", "x" * 256, ".hidden"])
def test_bad_index_name_is_refused_by_http_and_rpc(beater: ServiceHandle, wamp: WampClient, bad: str) -> None:
    from urllib.parse import quote

    resp = ingest(beater.url, quote(bad, safe=""), {"kind": "x"})
    assert resp.status == 400
    assert resp.json()["error"] == "invalid_index"
    if bad in ("a*b", "a,b"):
        # Ingest names one concrete target; a read target may be a pattern or a list.
        assert len(wamp.call("com.estrom.register_query", bad, "kind:x")) == 16
        return
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", bad, "kind:x")
    assert err.value.error == "com.estrom.error.invalid_index"


@pytest.mark.parametrize(
    ("query", "reason_part"),
    [
        ("message:(unbalanced", "parse"),
        ("status:[1 TO", "parse"),
        ({"no_such_query_type": {"f": 1}}, "no_such_query_type"),
        ({"match": {"a": "x"}, "term": {"b": "y"}}, "exactly one query type"),
        ({}, "empty"),
        ("   ", "empty"),
        (42, "string or a JSON object"),
        (["list"], "string or a JSON object"),
    ],
)
def test_invalid_query_is_refused_and_not_stored(
    wamp: WampClient, index: str, query: object, reason_part: str
) -> None:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.register_query", index, query)
    assert err.value.error == "com.estrom.error.invalid_query"
    assert reason_part in str(err.value.args[0])
    if isinstance(query, str) and query.strip():
        with pytest.raises(ApplicationError) as missing:
            wamp.call("com.estrom.describe_query", sid_for(index, query))
        assert missing.value.error == "com.estrom.error.no_such_query"


@pytest.mark.parametrize("sid", ["0123456789abcdef", "not-a-sid", "", 7])
def test_describe_unknown_sid(wamp: WampClient, sid: object) -> None:
    with pytest.raises(ApplicationError) as err:
        wamp.call("com.estrom.describe_query", sid)
    assert err.value.error == "com.estrom.error.no_such_query"


def test_unknown_path_and_wrong_method(beater: ServiceHandle) -> None:
    resp = http("GET", beater.url + "/nope")
    assert resp.status == 404
    assert resp.json()["error"] == "not_found"
    resp = http("GET", beater.url + "/api/v0.1/ingest/events")
    assert resp.status == 405
    assert resp.json()["error"] == "method_not_allowed"
