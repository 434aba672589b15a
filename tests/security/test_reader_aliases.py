"""A reader's target is judged by what it reaches: aliases to indices outside it are refused.

A writer's template (or an admin) may put an alias named like the
anonymous reader's targets (``public-*``) on an index outside them
(``payroll-*``). Registering on that alias, or on a pattern its name
matches, would deliver the payroll documents: it is refused over WAMP, as
``com.estrom.error.not_authorized``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.handles import EngineHandle
from devstack.stack import Stack
from devstack.wamp_client import WampClient
from tests.http_client import engine_request, http, ingest
from tests.readers.stack import ReadersStack, start_readers_stack
from tests.real_stack import ServiceHandle, StartService, admin_client
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PAYROLL = f"payroll-{RUN}"
LEAK = f"public-leak-{RUN}"
FINE = f"public-fine-{RUN}"


@pytest.fixture(scope="module")
def public_only(stack: Stack, engine: EngineHandle) -> Iterator[ReadersStack]:
    s = start_readers_stack(
        stack,
        "alias-readers",
        {"anonymous": {"targets": ["public-*"]}},
        ESTROM_TAILOR_ACCESS_RECHECK="0.5",
        ESTROM_ROUTER_ACCESS_RECHECK="0.5",
    )
    engine_request(engine.url, "PUT", f"/{PAYROLL}", {"aliases": {LEAK: {}}})
    engine_request(engine.url, "PUT", f"/{FINE}-1", {"aliases": {FINE: {}}})
    yield s
    s.stop()
    # The alias would refuse later tests' public-* too: the engine is the session's.
    engine_request(engine.url, "DELETE", f"/{PAYROLL},{FINE}-1")


@pytest.mark.parametrize("target", [LEAK, f"public-leak-{RUN[:4]}*", "public-*"])
def test_an_alias_leading_outside_the_readers_targets_is_refused(
    public_only: ReadersStack, target: str
) -> None:
    client = public_only.client(None)
    try:
        with pytest.raises(ApplicationError) as refused:
            client.call("com.estrom.register_query", target, "*")
        assert refused.value.error == "com.estrom.error.not_authorized"
    finally:
        client.close()


def test_an_alias_inside_the_readers_targets_is_fine(public_only: ReadersStack) -> None:
    client = public_only.client(None)
    try:
        sid = client.call("com.estrom.register_query", FINE, "*")
        assert len(sid) == 16
    finally:
        client.close()


def test_a_query_on_an_alias_made_a_moment_ago_matches_at_once(
    start_beater: StartService, engine: EngineHandle, wamp: WampClient
) -> None:
    """Not at the next sweep (600 s here): the registration, or the first batch meeting the new
    target, re-reads the aliases; whichever beater serves the registration."""
    fresh = start_beater(ESTROM_QUERY_SWEEP_INTERVAL="600")
    index = f"aliased-{uuid.uuid4().hex[:8]}"
    alias = f"{index}-alias"
    engine_request(engine.url, "PUT", f"/{index}", {"aliases": {alias: {}}})
    sid = wamp.call("com.estrom.register_query", alias, "marker:m1")
    sink = wamp.subscribe(f"docs-for-{sid}")
    resp = ingest(fresh.url, index, {"marker": "m1"})
    assert resp.status == 200, resp.body
    hits = sink.wait_for_count(1, timeout=20)
    assert hits[0]["_index"] == index


def test_estroms_own_indices_are_no_readers(tailor: ServiceHandle, wamp: WampClient) -> None:
    """Not by name (403, not_authorized), and not through a wider pattern's backfill either."""
    own = "estrom-queries-_shared-0"
    for target in (own, "estrom-queries-*"):
        resp = http(
            "GET", f"{tailor.url}/api/v0.1/docs?{urlencode({'i': target, 'q': '*', 'n': 5, 'timeout': 0.1})}"
        )
        assert resp.status == 403, resp.body
        with pytest.raises(ApplicationError) as refused:
            wamp.call("com.estrom.register_query", target, "*")
        assert refused.value.error == "com.estrom.error.not_authorized"
    # e* covers estrom-queries-*; a stored query would match this (every query document has
    # estrom_sid): none comes back.
    wide = urlencode({"i": "e*", "q": "_exists_:estrom_sid", "n": 50, "timeout": 0.1})
    body = http("GET", f"{tailor.url}/api/v0.1/docs?{wide}")
    assert body.status == 200, body.body
    assert json.loads(body.body)["hits"] == []


def test_over_http_too_an_alias_leading_outside_is_refused(public_only: ReadersStack) -> None:
    """The user's report: ``GET /api/v0.1/docs?i=public-leak&q=*&n=5`` read payroll's documents."""
    for target in (LEAK, "public-*"):
        params = urlencode({"i": target, "q": "*", "n": 5, "timeout": 0.1})
        resp = http("GET", f"{public_only.tailor.url}/api/v0.1/docs?{params}")
        assert resp.status == 403, resp.body
        assert PAYROLL not in resp.body.decode()  # nor does the refusal name what is behind
    fine = http(
        "GET", f"{public_only.tailor.url}/api/v0.1/docs?{urlencode({'i': FINE, 'q': '*', 'timeout': 0.1})}"
    )
    assert fine.status == 200, fine.body


def test_a_query_document_whose_description_and_target_disagree_is_nobodys(
    public_only: ReadersStack, engine: EngineHandle
) -> None:
    """The user's report: a document in the shared index describing ``public-x`` but matching
    ``payroll`` let an anonymous reader of ``public-*`` subscribe to payroll's documents. Writers
    cannot write it any more (tests/security/test_writers.py); one written on the engine directly
    is not described, so nobody may subscribe to it."""
    sid = uuid.uuid4().hex[:16]
    doc = {
        "estrom_query": {"match_all": {}},
        "estrom_sid": sid,
        "estrom_target": PAYROLL,
        "estrom_registered": 0,
        "estrom_meta": {"index": f"public-x-{RUN}", "query": "*", "registered_at": 0},
        "estrom_active": True,
    }
    engine_request(engine.url, "PUT", f"/estrom-queries-_shared-0/_doc/{sid}?refresh=true", doc)
    client = public_only.client(None)
    try:
        with pytest.raises(ApplicationError) as unknown:
            client.call("com.estrom.describe_query", sid)
        assert unknown.value.error == "com.estrom.error.no_such_query"
        with pytest.raises(ApplicationError) as refused:
            client.subscribe(f"docs-for-{sid}")
        assert refused.value.error == "wamp.error.not_authorized"
    finally:
        client.close()
        engine_request(engine.url, "DELETE", f"/estrom-queries-_shared-0/_doc/{sid}?refresh=true")


def test_a_live_tail_whose_alias_grows_beyond_its_reader_ends_and_is_told(
    public_only: ReadersStack, engine: EngineHandle
) -> None:
    """Admitted while ``public-grow`` led to public indices only; then payroll joins the alias:
    the open stream ends with ``not_authorized`` at the tailor's next look
    (``ESTROM_TAILOR_ACCESS_RECHECK``, 0.5 s here), not whenever it is reopened."""
    grow = f"public-grow-{RUN}"
    engine_request(engine.url, "PUT", f"/{grow}-1", {"aliases": {grow: {}}})
    tail = Tail(public_only.tailor.url, {"i": grow, "q": "*", "format": "ndjson", "timeout": 120})
    try:
        assert tail.status == 200
        tail.wait(lambda t: bool(t.lines), what="the subscription line")
        engine_request(
            engine.url, "POST", "/_aliases", {"actions": [{"add": {"index": PAYROLL, "alias": grow}}]}
        )
        tail.wait_end(timeout=30)
    finally:
        tail.close()
        engine_request(engine.url, "DELETE", f"/{grow}-1")
        engine_request(
            engine.url, "POST", "/_aliases", {"actions": [{"remove": {"index": PAYROLL, "alias": grow}}]}
        )
    assert tail.lines[-1]["error"] == "not_authorized"


def test_a_wamp_subscription_whose_alias_grows_beyond_its_reader_is_removed(
    public_only: ReadersStack, engine: EngineHandle
) -> None:
    """The same over WAMP: the router's gate looks again (``ESTROM_ROUTER_ACCESS_RECHECK``, 0.5 s
    here) and removes the subscription (a client announcing WAMP's subscription revocation, as
    autobahn-js does, gets UNSUBSCRIBED with the reason; autobahn-python announces none)."""
    grow = f"public-wgrow-{RUN}"
    engine_request(engine.url, "PUT", f"/{grow}-1", {"aliases": {grow: {}}})
    client = public_only.client(None)
    admin = admin_client(public_only.router.url)
    try:
        sid = client.call("com.estrom.register_query", grow, "*")
        client.subscribe(f"docs-for-{sid}")
        assert admin.call("wamp.subscription.lookup", f"docs-for-{sid}") is not None
        engine_request(
            engine.url, "POST", "/_aliases", {"actions": [{"add": {"index": PAYROLL, "alias": grow}}]}
        )
        wait_until(
            lambda: admin.call("wamp.subscription.lookup", f"docs-for-{sid}") is None,
            timeout=30,
            what="the subscription removed by the router",
        )
    finally:
        client.close()
        admin.close()
        engine_request(engine.url, "DELETE", f"/{grow}-1")
        engine_request(
            engine.url, "POST", "/_aliases", {"actions": [{"remove": {"index": PAYROLL, "alias": grow}}]}
        )
