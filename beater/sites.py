"""The beater's sites: each request's body limit chosen by its route before its body is read.

On a port shared by estrom's routes and the engine's bulk API, bulk
requests may send up to ``ESTROM_BULK_MAX_BODY`` (100 MiB, the engine's
default), every other request only ``ESTROM_INGEST_MAX_BODY``. The limit is
applied while the body arrives (``beater.http.request_body.LimitedRequest``),
so it must be known when the headers end, before Twisted routes the request:
the channel reads the request line as it comes and sets the request's limit
from the route it will take, the way ``common.http.Routes`` will decide it.
A path that is not a bulk request therefore never gets the bulk limit, not
even one that the engine's API would 404 or 405.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from urllib.parse import unquote_to_bytes

from twisted.web.server import Site

from beater.bulk.api import BulkAPI
from beater.bulk.routes import route
from beater.http.request_body import Admission, LimitedRequest, request_factory
from beater.ingest.api import BeaterAPI
from beater.writers.gate import WriterGate
from common.config import Settings
from common.http import HTTPError, JsonErrorChannel, QuietSite, Routes

#: ``limit(method, path)``: the body limit of a request, from its request line.
BodyLimit = Callable[[bytes, bytes], int]


def path_segments(path: bytes) -> list[str]:
    """The path's segments as ``Routes`` gets them (Twisted's ``postpath``, decoded, no trailing "")."""
    path = path.split(b"?", 1)[0]
    segments = [unquote_to_bytes(s).decode("utf-8", "replace") for s in path[1:].split(b"/")]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    return segments


def _own_route(segments: list[str], prefixes: Iterable[tuple[str, ...]]) -> bool:
    """Whether ``Routes`` knows the path itself (``Routes._match``'s rule), so no fallback serves it."""
    return any(
        tuple(segments[: len(p)]) == p and (len(segments) > len(p) or not p or segments == list(p))
        for p in prefixes
    )


def body_limit(settings: Settings, own_prefixes: Iterable[tuple[str, ...]] = ()) -> BodyLimit:
    """The bulk limit for requests the bulk API will take as bulk writes; the ingest limit for the rest."""
    prefixes = tuple(own_prefixes)

    def limit(method: bytes, path: bytes) -> int:
        segments = path_segments(path)
        if (
            not _own_route(segments, prefixes)
            and route(method.decode("ascii", "replace"), segments) == "bulk"
        ):
            return settings.bulk_max_body
        return settings.ingest_max_body

    return limit


class RoutedLimitChannel(JsonErrorChannel):
    """Sets each request's body limit from its request line, before the headers end."""

    def lineReceived(self, line: bytes) -> None:
        before = self.requests[-1] if self.requests else None
        super().lineReceived(line)
        if not self.requests or self.requests[-1] is before:
            return  # a header line, not a new request
        request = self.requests[-1]
        limit: BodyLimit | None = getattr(self.site, "body_limit", None)
        parts = line.split(b" ")
        if len(parts) == 3 and isinstance(request, LimitedRequest):
            request.line = (parts[0], parts[1])
            if limit is not None:
                request.max_body = limit(parts[0], parts[1])


def with_routed_limits(site: Site, limit: BodyLimit, smallest: int) -> Site:
    """``site`` whose requests get their limit by route (``smallest`` if the request line is unreadable)."""
    site.protocol = RoutedLimitChannel
    site.body_limit = limit  # type: ignore[attr-defined]
    site.requestFactory = request_factory(smallest)
    return site


def shared_site(api: BeaterAPI, bulk: BulkAPI) -> Site:
    """The beater's port serving estrom's routes and the bulk API: each with its own body limit."""
    settings = api.settings
    site = api.site(bulk.handle)
    routes = site.resource
    prefixes = [prefix for _method, prefix in routes.routes] if isinstance(routes, Routes) else []
    smallest = min(settings.ingest_max_body, settings.bulk_max_body)
    return with_routed_limits(site, body_limit(settings, prefixes), smallest)


def bulk_site(bulk: BulkAPI) -> Site:
    """A listener of its own (``ESTROM_BULK_LISTEN``) serving only the bulk API and the start-up pass-through.

    Bulk writes get ``ESTROM_BULK_MAX_BODY``, the pass-through requests
    (templates, policies) ``ESTROM_INGEST_MAX_BODY``.
    """
    settings = bulk.settings
    routes = Routes({}, fallback=bulk.handle, cancel_on_disconnect=True, retry_after=settings.retry_after)
    site = QuietSite(routes)
    site.body_gate = EngineAPICredentials(bulk.gate)  # type: ignore[attr-defined]  # read by LimitedRequest
    smallest = min(settings.ingest_max_body, settings.bulk_max_body)
    return with_routed_limits(site, body_limit(settings), smallest)


class EngineAPICredentials:
    """The bulk listener's body gate: a body is read only from a writer (or for the engine to judge)."""

    def __init__(self, gate: WriterGate) -> None:
        self.gate = gate

    def admit_body(self, request: LimitedRequest) -> Admission:
        return Admission()

    def body_refused(self, limit: str) -> None:
        self.gate.metrics.inc("write_refusals_total", reason="body_over_limit")

    def early_refusal(self, request: LimitedRequest) -> HTTPError | None:
        try:
            self.gate.identify(request, engine_api=True)
        except HTTPError as refusal:
            return refusal
        return None
