"""Readers at the router (real router, beater, engine): ticket login, targets, quotas over WAMP.

Targets are concrete names here: lists and patterns are refused as
``invalid_index`` by the beater until read targets land; their
containment is covered by tests/readers/test_readers_unit.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.wamp_client import JoinRefused, WampClient
from tests.http_client import ingest
from tests.readers.stack import (
    BURST,
    LOGS,
    LOGS_APP,
    METRICS,
    OPS,
    PAY,
    PAYROLL,
    PUBLIC,
    SECRET_APP,
    SUBSCRIPTIONS,
    TWO,
    WRONG,
    ReadersStack,
    from_address,
)

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = "com.estrom.error.not_authorized"
QUOTA = "com.estrom.error.quota_exceeded"
NO_SUCH_QUERY = "com.estrom.error.no_such_query"
ROUTER_REFUSED = "wamp.error.not_authorized"

TOKENS = {"anonymous": None, "ops": OPS, "two": TWO, "pay": PAY}
#: identity -> the targets it may read (of those below)
ALLOWED = {
    "anonymous": {PUBLIC},
    "ops": {LOGS, LOGS_APP, SECRET_APP},
    "two": {LOGS_APP, METRICS},
    "pay": {PAYROLL},
}
TARGETS = (PUBLIC, LOGS, LOGS_APP, SECRET_APP, METRICS, PAYROLL)


@pytest.fixture(scope="module")
def clients(rstack: ReadersStack) -> Iterator[dict[str, WampClient]]:
    made = {name: rstack.client(token) for name, token in TOKENS.items()}
    yield made
    for c in made.values():
        c.close()


@pytest.fixture(scope="module")
def sids(clients: dict[str, WampClient]) -> dict[str, str]:
    """One query per target, registered by an identity allowed it."""
    out = {}
    for target in TARGETS:
        owner = next((n for n, allowed in ALLOWED.items() if target in allowed), None)
        if owner is not None:
            out[target] = clients[owner].call("com.estrom.register_query", target, "level:error")
    return out


def test_a_token_logs_in_as_its_reader(rstack: ReadersStack) -> None:
    client = rstack.client(OPS)
    try:
        assert (client.details.authid, client.details.authrole) == ("ops", "reader")
    finally:
        client.close()
    named = rstack.client(TWO, authid="two")
    named.close()


@pytest.mark.parametrize(("token", "authid"), [(WRONG, None), (OPS, "two"), (OPS[:-1], None), ("", None)])
def test_a_wrong_token_never_joins(rstack: ReadersStack, token: str, authid: str | None) -> None:
    with pytest.raises(JoinRefused):
        rstack.client(token, authid).close()


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("who", list(TOKENS))
def test_register_by_target(clients: dict[str, WampClient], who: str, target: str) -> None:
    if target in ALLOWED[who]:
        sid = clients[who].call("com.estrom.register_query", target, "level:error")
        assert len(sid) == 16
    else:
        with pytest.raises(ApplicationError) as exc:
            clients[who].call("com.estrom.register_query", target, "level:error")
        assert exc.value.error == NOT_AUTHORIZED


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("who", list(TOKENS))
def test_describe_by_target(
    clients: dict[str, WampClient], sids: dict[str, str], who: str, target: str
) -> None:
    sid = sids[target]
    if target in ALLOWED[who]:
        assert clients[who].call("com.estrom.describe_query", sid)["index"] == target
    else:
        with pytest.raises(ApplicationError) as exc:
            clients[who].call("com.estrom.describe_query", sid)
        assert exc.value.error == NO_SUCH_QUERY


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("who", list(TOKENS))
def test_subscribe_by_target(rstack: ReadersStack, sids: dict[str, str], who: str, target: str) -> None:
    client = rstack.client(TOKENS[who])
    try:
        topic = f"docs-for-{sids[target]}"
        if target in ALLOWED[who]:
            client.subscribe(topic)
        else:
            with pytest.raises(ApplicationError) as exc:
                client.subscribe(topic)
            assert exc.value.error == ROUTER_REFUSED
    finally:
        client.close()


def test_an_unknown_sid_cannot_be_subscribed(clients: dict[str, WampClient]) -> None:
    """The router cannot know what it reads: refused, for everyone."""
    with pytest.raises(ApplicationError) as exc:
        clients["ops"].subscribe("docs-for-" + uuid.uuid4().hex[:16])
    assert exc.value.error == ROUTER_REFUSED


def test_payroll_reaches_only_its_reader(rstack: ReadersStack, clients: dict[str, WampClient]) -> None:
    marker = uuid.uuid4().hex
    sid = clients["pay"].call("com.estrom.register_query", PAYROLL, f"marker:{marker}")
    sink = clients["pay"].subscribe(f"docs-for-{sid}")
    for who in ("anonymous", "ops", "two"):
        with pytest.raises(ApplicationError):
            clients[who].subscribe(f"docs-for-{sid}")
    assert ingest(rstack.beater.url, PAYROLL, {"marker": marker, "salary": 1}).status == 200
    assert sink.wait_for_marker(marker)[0]["_index"] == PAYROLL


# --- quotas --------------------------------------------------------------------------


def test_the_flood_is_held_and_others_are_not(limited: ReadersStack) -> None:
    flood = limited.client(None)
    other = from_address(limited.router.url, limited.router.port, "127.0.0.2")
    try:
        held = []
        refusal = None
        for i in range(SUBSCRIPTIONS * 3):
            try:
                sid = flood.call(
                    "com.estrom.register_query", f"flood-{i % 5}", f"n:{i} AND x:{uuid.uuid4().hex}"
                )
            except ApplicationError as exc:
                refusal = exc
                break
            held.append(flood.subscribe(f"docs-for-{sid}"))
        assert refusal is not None
        assert refusal.error == QUOTA
        assert "ESTROM_QUOTA_SUBSCRIPTIONS is 20" in str(refusal.args[0])
        assert refusal.kwargs["limit"] == "ESTROM_QUOTA_SUBSCRIPTIONS"
        assert len(held) == SUBSCRIPTIONS
        # Another address registers and subscribes normally.
        sid = other.call("com.estrom.register_query", PUBLIC, "level:warn")
        other.subscribe(f"docs-for-{sid}")
        # A second anonymous session from the flood's address shares its quota.
        same = limited.client(None)
        try:
            with pytest.raises(ApplicationError) as exc:
                same.call("com.estrom.register_query", "flood-x", "level:x")
            assert exc.value.error == QUOTA
            with pytest.raises(ApplicationError) as sub:
                same.subscribe(f"docs-for-{sid}")  # the router's own check
            assert sub.value.error == ROUTER_REFUSED
        finally:
            same.close()
        # A principal-held reader is not held by anonymous limits.
        ops = limited.client(OPS)
        try:
            sid_ops = ops.call("com.estrom.register_query", LOGS, "level:error")
            ops.subscribe(f"docs-for-{sid_ops}")
        finally:
            ops.close()
    finally:
        flood.close()
    # Limits free up when subscriptions end (the flood's session left).
    again = limited.client(None)
    try:
        sid = wait_registered(again, "flood-0", "level:again")
        again.subscribe(f"docs-for-{sid}")
    finally:
        again.close()
        other.close()


def wait_registered(client: WampClient, index: str, query: str) -> str:
    """Register once the router has seen the flood's session leave (its meta event is asynchronous)."""
    from tests.waiting import wait_until

    def attempt() -> str | None:
        try:
            return str(client.call("com.estrom.register_query", index, query))
        except ApplicationError as exc:
            if exc.error != QUOTA:
                raise
            return None

    return wait_until(attempt, 20, "the flood's subscriptions released")


def test_registrations_per_second_are_limited(limited: ReadersStack) -> None:
    client = from_address(limited.router.url, limited.router.port, "127.0.0.3")
    try:
        refusal = None
        for i in range(BURST * 2):  # noqa: B007 (counted below)
            try:
                client.call("com.estrom.register_query", "flood-rate", "level:same")
            except ApplicationError as exc:
                refusal = exc
                break
        else:
            pytest.fail("no registration was refused")
        assert BURST <= i < BURST * 2  # the burst, and at most a refill or two
        assert refusal.error == QUOTA
        assert refusal.kwargs["limit"] == "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"
        assert int(refusal.kwargs["retry_after"]) >= 1
    finally:
        client.close()
