"""Wiring: settings → engine, router session, shared subscriptions, HTTP face."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from common.config import Settings
from common.contract import SHUTTING_DOWN
from common.engine import Engine
from common.router_tier import RouterTier
from common.service import listen_and_join
from tailor.http.api import TailorAPI
from tailor.readers.gate import ReaderGate
from tailor.streaming.format import EncodedHit
from tailor.subscriptions.hub import SubscriptionHub
from tailor.subscriptions.partitioned import PartitionedHub

log = Logger()


class Tailor:
    """One tailor process: HTTP server and WAMP subscriber."""

    def __init__(self, settings: Settings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.engine = Engine.from_settings(settings, reactor)
        self.wamp = RouterTier.connect(
            settings.router_urls, settings.realm, authid=settings.tailor_authid, secret=settings.tailor_secret
        )
        self.hub = PartitionedHub(
            [
                SubscriptionHub(
                    holder,
                    reactor,
                    settings.tailor_sse_history,
                    settings.tailor_sse_linger,
                    router_wait=settings.tailor_router_wait,
                    prepare=EncodedHit,
                )
                for holder in self.wamp.holders
            ]
        )
        try:  # readers: fail closed on a non-loopback listen address without a readers file
            gate = ReaderGate.from_env(
                os.environ,
                settings.tailor_listen,
                settings.retry_after,
                settings.quotas,
                settings.query_index_prefix,
            )
        except ValueError as exc:  # ReadersError
            print(f"tailor: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        gate.reload_on_sighup(reactor)
        self.api = TailorAPI(settings, self.engine, self.wamp, self.hub, reactor, gate)
        # A lost session takes every subscription on its node with it: JSON streams
        # end now, as valid documents with an "error"; NDJSON/SSE ones wait for the
        # rejoin and get a gap notice (see SubscriptionHub.router_lost).
        for node, hub in enumerate(self.hub.hubs):
            lost = functools.partial(self._router_lost, node, hub)
            hub.wamp.component.on("leave", lost)
            hub.wamp.component.on("disconnect", lost)
        reactor.addSystemEventTrigger("before", "shutdown", self._shutting_down)
        self.port: IListeningPort | None = None

    def _router_lost(self, node: int, hub: SubscriptionHub, *_args: Any, **_kwargs: Any) -> None:
        if len(hub) or self.api.streams:
            log.warn("router.lost", node=node, subscriptions=len(hub), clients=len(self.api.streams))
        hub.router_lost("connection to the router lost")

    def _shutting_down(self) -> None:
        self.api.close_all(SHUTTING_DOWN, "the tailor is shutting down; reconnect")

    async def start(self) -> None:
        """Listen, join the router, check the engine; then print the ready line."""
        self.port = await listen_and_join(
            "tailor", self.reactor, self.settings.tailor_listen, self.api.site(), self.wamp, self.engine
        )
        self.api.access.start()
