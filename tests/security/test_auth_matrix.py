"""Who may do what: every role by action by URI family, tried against the real router.

The table below is the whole policy of ``router/config.json``; a cell not
listed as allowed must be refused with ``wamp.error.not_authorized``. Roles:
``beater`` and ``tailor`` (WAMP-CRA, static permissions), ``browser``
(anonymous, authorized per action by the router's embedded authorizer,
router/estrom_router/authorizer.py), and ``unauthenticated`` (no credentials
on a router with anonymous access off: it never joins, so it can do nothing).

The subscribe cells with a match policy are the point of the browser's
authorizer: crossbar's static permissions check the URI but not the match,
so only a sid's exact topic is a browser's; prefix and wildcard
subscriptions (every query's hits) are refused. See docs/reliability.md
"Security".
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.types import SubscribeOptions

from devstack.stack import Stack
from devstack.wamp_client import JoinRefused, WampClient, on_reactor
from tests.real_stack import SECRETS, RouterHandle, admin_client

pytestmark = pytest.mark.integration

NOT_AUTHORIZED = "wamp.error.not_authorized"
INVALID_URI = "wamp.error.invalid_uri"
ROLES = ("beater", "tailor", "browser")
RUN = uuid.uuid4().hex[:8]
SID = "feedfacecafe" + RUN[:4]


@dataclass(frozen=True)
class Cell:
    family: str
    action: str
    uri: str
    allowed: frozenset[str]
    match: str | None = None
    #: what a refusal says: crossbar reserves ``wamp.*`` for itself, for every role
    refusal: str = NOT_AUTHORIZED

    def __str__(self) -> str:
        how = f" ({self.match})" if self.match else ""
        return f"{self.family}:{self.action}{how}:{self.uri}"


def cell(
    family: str, action: str, uri: str, *allowed: str, match: str | None = None, refusal: str = NOT_AUTHORIZED
) -> Cell:
    return Cell(family, action, uri, frozenset(allowed), match, refusal)


#: The expected allow table. Procedures named ``matrix_*`` are registered by
#: the admin before the calls, so a refused call is refused, not just missing.
MATRIX = [
    cell("com.estrom.*", "call", "com.estrom.describe_query", "tailor", "browser"),
    cell("com.estrom.*", "call", f"com.estrom.matrix_{RUN}", "tailor"),
    cell("com.estrom.*", "register", f"com.estrom.matrix_new_{RUN}", "beater"),
    cell("com.estrom.*", "publish", f"com.estrom.matrix_{RUN}"),
    cell("com.estrom.*", "subscribe", f"com.estrom.matrix_{RUN}"),
    cell("docs-for-*", "call", f"docs-for-matrix{RUN}"),
    cell("docs-for-*", "register", f"docs-for-matrix_new{RUN}"),
    cell("docs-for-*", "publish", f"docs-for-{SID}", "beater"),
    cell("docs-for-*", "subscribe", f"docs-for-{SID}", "tailor", "browser"),
    cell("docs-for-*", "subscribe", f"docs-for-{SID}", "tailor", "browser", match="exact"),
    # Every query's hits, or a share of them: the tailor's (trusted), never a browser's.
    cell("docs-for-*", "subscribe", "docs-for-", "tailor", match="prefix"),
    cell("docs-for-*", "subscribe", "docs-for-a", "tailor", match="prefix"),
    cell("docs-for-*", "subscribe", f"docs-for-{SID}", "tailor", match="prefix"),
    cell("docs-for-*", "subscribe", f"docs-for-{SID}", "tailor", match="wildcard"),
    cell("docs-for-*", "subscribe", f"docs-for-matrix{RUN}", "tailor"),
    cell("docs-for-*", "subscribe", "", match="wildcard"),
    cell("wamp.*", "call", "wamp.subscription.lookup", "beater"),
    cell("wamp.*", "call", "wamp.session.count"),
    cell("wamp.*", "register", f"wamp.matrix.p{RUN}", refusal=INVALID_URI),
    cell("wamp.*", "publish", f"wamp.matrix.t{RUN}", refusal=INVALID_URI),
    cell("wamp.*", "subscribe", "wamp.subscription.on_create", "beater"),
    cell("wamp.*", "subscribe", "wamp.session.on_join"),
    # The browser authorizer's own procedure: the router's alone.
    cell("estrom.router.*", "call", "estrom.router.authorize_browser"),
    cell("estrom.router.*", "register", f"estrom.router.matrix_{RUN}"),
    cell("estrom.router.*", "publish", f"estrom.router.matrix_{RUN}"),
    cell("estrom.router.*", "subscribe", f"estrom.router.matrix_{RUN}"),
]


@pytest.fixture(scope="module")
def clients(router: RouterHandle, beater: Any) -> Iterator[dict[str, WampClient]]:
    """One session per role, plus the admin's procedures the calls aim at."""
    admin = admin_client(router.url)
    made: dict[str, WampClient] = {}
    try:
        for uri in (f"com.estrom.matrix_{RUN}", f"docs-for-matrix{RUN}"):
            on_reactor(lambda uri=uri: admin.session.register(lambda *a: "ok", uri))
        for role in ("beater", "tailor"):
            made[role] = WampClient(router.url, authid=role, secret=SECRETS[f"ESTROM_{role.upper()}_SECRET"])
        made["browser"] = WampClient(router.url)
        sid = made["browser"].call("com.estrom.register_query", f"matrix-{RUN}", "level:error")
        made["browser"].describe_sid = sid  # type: ignore[attr-defined]
        yield made
    finally:
        for client in made.values():
            client.close()
        admin.close()


def attempt(client: WampClient, c: Cell, sid: str, role: str) -> None:
    """Do the action; raises ApplicationError when the router refuses it.

    Each role registers its own URI: crossbar checks "already registered"
    before the permission, which would hide a refusal.
    """
    session = client.session
    if c.action == "call":
        args = (sid,) if c.uri == "com.estrom.describe_query" else ()
        args = ("docs-for-x",) if c.uri == "wamp.subscription.lookup" else args
        client.call(c.uri, *args)
    elif c.action == "register":
        on_reactor(lambda: session.register(lambda *a: None, f"{c.uri}_{role}"))
    elif c.action == "publish":
        client.publish(c.uri, {"_index": "matrix", "_source": {}})
    else:
        options = SubscribeOptions(match=c.match) if c.match else None
        on_reactor(lambda: session.subscribe(lambda *a: None, c.uri, options=options))


@pytest.mark.parametrize("c", MATRIX, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_exactly_the_allowed_cells_succeed(clients: dict[str, WampClient], role: str, c: Cell) -> None:
    sid = clients["browser"].describe_sid  # type: ignore[attr-defined]
    if role in c.allowed:
        attempt(clients[role], c, sid, role)
        return
    with pytest.raises(ApplicationError) as err:
        attempt(clients[role], c, sid, role)
    assert err.value.error == c.refusal, err.value


@pytest.fixture(scope="module")
def closed_router(stack: Stack) -> Iterator[RouterHandle]:
    handle = stack.start_router(f"router-closed-{RUN}", ESTROM_ROUTER_ANONYMOUS="0")
    yield handle
    handle.stop()


@pytest.mark.parametrize("c", MATRIX, ids=str)
def test_unauthenticated_sessions_never_join(closed_router: RouterHandle, c: Cell) -> None:
    """Without credentials (and anonymous access off) no cell is reachable: the join itself fails."""
    with pytest.raises(JoinRefused) as err:
        WampClient(closed_router.url)
    assert err.value.reason == "wamp.error.no_auth_method"


def test_the_table_covers_every_role_action_and_family() -> None:
    covered = {(c.family, c.action) for c in MATRIX}
    families = ("com.estrom.*", "docs-for-*", "wamp.*", "estrom.router.*")
    assert covered == {(f, a) for f in families for a in ("call", "register", "publish", "subscribe")}
