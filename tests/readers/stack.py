"""A stack with readers configured: its own router (ESTROM_READERS), beater and tailor.

Helpers for tests/readers: the readers file, ticket-authenticated WAMP
clients (the same real autobahn sessions as devstack/wamp_client.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autobahn.twisted.component import Component
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint

from common.access.tokens import token_hash
from devstack.handles import RouterHandle, ServiceHandle
from devstack.stack import Stack
from devstack.wamp_client import WampClient, on_reactor

RUN = uuid.uuid4().hex[:8]
OPS = "ops-" + uuid.uuid4().hex
TWO = "two-" + uuid.uuid4().hex
PAY = "pay-" + uuid.uuid4().hex
WRONG = "wrong-" + uuid.uuid4().hex

LOGS = f"logs-{RUN}"
LOGS_APP = f"logs-app-{RUN}"
SECRET_APP = "logs-app-secret"
METRICS = f"metrics-{RUN}"
PUBLIC = f"public-{RUN}"
PAYROLL = "payroll"
#: quotas of the "limited" stack (tests/readers/conftest.py)
SUBSCRIPTIONS = 20
BURST = 40


def readers_document() -> dict[str, Any]:
    """ops reads logs-*; two reads two lists (one with an exclusion); pay reads payroll; anonymous public-*."""
    return {
        "readers": [
            {"name": "ops", "token": OPS, "targets": ["logs-*"]},
            {"name": "two", "token": token_hash(TWO), "targets": [f"logs-app-*,-{SECRET_APP}", "metrics-*"]},
            {"name": "pay", "token": PAY, "targets": [PAYROLL]},
        ],
        "anonymous": {"targets": ["public-*"]},
    }


def write_readers(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    return path


class TicketClient(WampClient):
    """A session that logs in with a reader's token (WAMP ticket), as the page does."""

    def __init__(self, url: str, token: str, authid: str | None = None, timeout: float = 20.0) -> None:
        super().__init__(url, timeout=timeout, authid=authid, ticket=token)


@dataclass
class ReadersStack:
    router: RouterHandle
    beater: ServiceHandle
    tailor: ServiceHandle
    readers_path: Path

    def client(self, token: str | None, authid: str | None = None) -> WampClient:
        return WampClient(self.router.url) if token is None else TicketClient(self.router.url, token, authid)

    def stop(self) -> None:
        for part in (self.tailor, self.beater, self.router):
            part.stop()


def start_readers_stack(stack: Stack, name: str, document: dict[str, Any], **env: str) -> ReadersStack:
    """Router, beater and tailor of the session's ``stack`` sharing ``document`` as their
    ESTROM_READERS, and ``env``'s quotas; on the session's engine."""
    path = write_readers(stack.workdir / name / "readers.json", document)
    settings = {"ESTROM_READERS": str(path), **env}
    router = stack.start_router(name, **settings)
    started: list[Callable[[], Any]] = [router.stop]
    try:
        beater = stack.start_service("beater", router_url=router.service_url, **settings)
        started.append(beater.stop)
        tailor = stack.start_service("tailor", router_url=router.service_url, **settings)
    except Exception:
        for stop in reversed(started):
            stop()
        raise
    return ReadersStack(router, beater, tailor, path)


def from_address(url: str, port: int, source: str) -> WampClient:
    """An anonymous session whose connection comes from ``source`` (127.0.0.2 and the like)."""
    client = WampClient.__new__(WampClient)
    client.url = url
    client.session = None
    client.details = None
    joined: Deferred[Any] = Deferred()

    def on_start() -> Deferred[Any]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0))
        component = Component(
            transports=[
                {
                    "type": "websocket",
                    "url": url,
                    "endpoint": endpoint,
                    "max_retries": 0,
                    "serializers": ["json"],
                }
            ],
            realm="estrom",
        )
        client._component = component

        def on_join(session: Any, _details: Any) -> None:
            client.session = session
            if not joined.called:
                joined.callback(session)

        component.on("join", on_join)
        component.start(reactor).addErrback(lambda f: joined.errback(f) if not joined.called else None)
        return joined

    on_reactor(on_start)
    return client
