"""The beater's sites: estrom's own routes, the engine's bulk API, or both on one port.

Each request is routed once, when its request line arrives
(``RoutePolicy.decide``, ``beater/http/routing.py``): the body limit must be
known before the body is read, so the channel notes the request's ``Route``
on it as the line comes, and everything after reads that decision: the
body's bounds and the credential check before the body
(``beater.http.request_body.LimitedRequest``), then ``Dispatch``, which
answers the route's 404 or 405 or runs its handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.web.http import Request
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from beater.bulk.api import BulkAPI
from beater.http.request_body import BodyGate, LimitedRequest
from beater.http.routing import Route, RoutePolicy
from beater.ingest.api import BeaterAPI
from beater.writers.gate import WriterGate
from common.config import Settings
from common.http import Handler, HTTPError, JsonErrorChannel, QuietSite, serve, write_json


class RoutedChannel(JsonErrorChannel):
    """Routes each request as its request line arrives, before the headers end."""

    def lineReceived(self, line: bytes) -> None:
        before = self.requests[-1] if self.requests else None
        super().lineReceived(line)
        if not self.requests or self.requests[-1] is before:
            return  # a header line, not a new request
        request = self.requests[-1]
        parts = line.split(b" ")
        if len(parts) == 3 and isinstance(request, LimitedRequest):
            request.route = self.site.policy.decide(parts[0], parts[1])


def route_of(request: Request, policy: RoutePolicy) -> Route:
    """The route the channel noted; decided here for a request that came another way (in-memory tests)."""
    route = getattr(request, "route", None)
    return route if isinstance(route, Route) else policy.decide(request.method, request.uri)


class Dispatch(Resource):
    """Runs each request's route: its handler, or its refusal (404, 405)."""

    isLeaf = True

    def __init__(self, policy: RoutePolicy, handlers: Mapping[str, Handler], retry_after: int) -> None:
        super().__init__()
        self.policy = policy
        self.handlers = handlers
        self.retry_after = retry_after

    def render(self, request: Request) -> Any:
        route = route_of(request, self.policy)
        if route.refusal is not None:
            write_json(request, route.refusal.status, route.refusal.body())
            return NOT_DONE_YET
        handler = self.handlers[route.name]
        return serve(
            request, handler, list(route.rest), retry_after=self.retry_after, cancel_on_disconnect=True
        )


class BeaterSite(QuietSite):
    """A listener of the beater: its routes, and the gate its request bodies pass."""

    protocol = RoutedChannel
    requestFactory = LimitedRequest

    def __init__(
        self, policy: RoutePolicy, handlers: Mapping[str, Handler], body_gate: BodyGate, retry_after: int
    ) -> None:
        super().__init__(Dispatch(policy, handlers, retry_after))
        self.policy = policy
        #: read by LimitedRequest: admits bodies by route, refuses credentials before a body is read
        self.body_gate = body_gate


def own_site(settings: Settings, api: BeaterAPI) -> BeaterSite:
    """The beater's port serving only estrom's routes (the bulk API listens on its own)."""
    policy = RoutePolicy(settings, own=True, engine_api=False)
    return BeaterSite(policy, api.handlers(), api, settings.retry_after)


def shared_site(settings: Settings, api: BeaterAPI, bulk: BulkAPI) -> BeaterSite:
    """The beater's port serving estrom's routes and the bulk API: each with its own body limit."""
    policy = RoutePolicy(settings, own=True, engine_api=True)
    return BeaterSite(policy, {**api.handlers(), **bulk.handlers()}, api, settings.retry_after)


def bulk_site(settings: Settings, bulk: BulkAPI) -> BeaterSite:
    """A listener of its own (``ESTROM_BULK_LISTEN``) serving only the bulk API and the start-up pass-through.

    Bulk writes get ``ESTROM_BULK_MAX_BODY``, the pass-through requests
    (templates, policies) ``ESTROM_INGEST_MAX_BODY``.
    """
    policy = RoutePolicy(settings, own=False, engine_api=True)
    return BeaterSite(policy, bulk.handlers(), EngineAPICredentials(bulk.gate), settings.retry_after)


class EngineAPICredentials:
    """The bulk listener's body gate: a body is read only from a writer (or for the engine to judge)."""

    def __init__(self, gate: WriterGate) -> None:
        self.gate = gate

    def admit_body(self, request: LimitedRequest) -> HTTPError | None:
        return None

    def body_refused(self, limit: str) -> None:
        self.gate.metrics.inc("write_refusals_total", reason="body_over_limit")

    def early_refusal(self, request: LimitedRequest) -> HTTPError | None:
        try:
            self.gate.identify(request, engine_api=True)
        except HTTPError as refusal:
            return refusal
        return None
