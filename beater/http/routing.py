"""Where a request goes and how large its body may be: decided once, from its request line.

A listener of the beater serves estrom's own routes (ingest, ``/healthz``,
``/metrics``), the engine's bulk API (bulk writes and the start-up
pass-through, ``beater/bulk/routes.py``), or both on one port. Which face
serves a request, its body limit and whose credentials judge it follow from
its method and path alone, so ``RoutePolicy.decide`` is asked once, when
the request line arrives (``beater/sites.py``), before any of the body is
read: bulk writes may send up to ``ESTROM_BULK_MAX_BODY`` (the engine's
default, 100 MiB), every other request only ``ESTROM_INGEST_MAX_BODY``,
not even a path the engine's API would 404 or 405 gets the bulk limit.
Every later layer reads that ``Route``: the body's bounds
(``LimitedRequest``), the credential check before the body, the handler
(``Dispatch``), and the 404 and 405 answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from beater.bulk.routes import route as engine_api_route
from beater.http.request_body import Bound
from common.config import Settings
from common.contract import METHOD_NOT_ALLOWED, NOT_FOUND
from common.http import HTTPError, match_route, path_refusal

API = ("api", "v0.1")
INGEST = (*API, "ingest")

#: estrom's own routes: ``(method, path prefix)`` -> the route's name
OWN_ROUTES: dict[tuple[str, tuple[str, ...]], str] = {
    ("POST", INGEST): "ingest",
    ("GET", ("healthz",)): "healthz",
    ("GET", ("metrics",)): "metrics",
}
#: the engine's API: its routes' names (``beater/bulk/routes.py``)
BULK = "bulk"
PASSTHROUGH = "passthrough"


@dataclass(frozen=True)
class Route:
    """What serves one request, with what body, judged by whom; or its refusal (404, 405)."""

    #: ``ingest``, ``healthz``, ``metrics``, ``bulk``, ``passthrough``; "" when refused
    name: str
    #: the path's segments after the route's prefix (the engine's API: all of them)
    rest: tuple[str, ...]
    #: bytes of body, raw and decoded
    max_body: int
    #: decoded bytes per encoded byte (ingest only)
    max_ratio: Bound | None = None
    #: the engine's API: its credentials are judged as ``ESTROM_BULK_AUTH`` says
    engine_api: bool = False
    refusal: HTTPError | None = None


def path_segments(path: bytes) -> list[str]:
    """The path's segments as Twisted routes them (``postpath``, percent-decoded, no trailing "")."""
    path = path.split(b"?", 1)[0]
    segments = [unquote_to_bytes(s).decode("utf-8", "replace") for s in path[1:].split(b"/")]
    if segments and segments[-1] == "":
        segments = segments[:-1]
    return segments


class RoutePolicy:
    """The routes of one listener: estrom's own (``own``), the engine's API (``engine_api``), or both."""

    def __init__(self, settings: Settings, *, own: bool, engine_api: bool) -> None:
        self.own = own
        self.engine_api = engine_api
        self.ingest_max_body = settings.ingest_max_body
        self.bulk_max_body = settings.bulk_max_body
        self.ingest_max_ratio = Bound(settings.ingest_max_ratio, "ESTROM_INGEST_MAX_RATIO")
        #: the limit of a request whose line cannot be read: the least this listener grants
        self.smallest = min(self.ingest_max_body, self.bulk_max_body) if engine_api else self.ingest_max_body

    def decide(self, method_bytes: bytes, path: bytes) -> Route:
        """The route of ``method path`` (``path`` as the request line has it, query string and all)."""
        method = method_bytes.decode("ascii", "replace")
        segments = path_segments(path)
        name, rest, known = match_route(OWN_ROUTES, method, segments) if self.own else (None, [], False)
        if name is not None:
            ratio = self.ingest_max_ratio if name == "ingest" else None
            return Route(name, tuple(rest), self.ingest_max_body, max_ratio=ratio)
        if known or not self.engine_api:
            # Only estrom's own paths are estrom's to judge; any other is the engine's API's path.
            return self._refused(path_refusal(method, known), engine_api=not known)
        kind = engine_api_route(method, segments)
        if kind == BULK:
            return Route(BULK, tuple(segments), self.bulk_max_body, engine_api=True)
        if kind == PASSTHROUGH:
            return Route(PASSTHROUGH, tuple(segments), self.ingest_max_body, engine_api=True)
        if kind is None:
            refusal = HTTPError.of(NOT_FOUND, "no such endpoint (the engine's API is not served here)")
        else:
            refusal = HTTPError.of(METHOD_NOT_ALLOWED, f"{method} not allowed here")
        return self._refused(refusal, engine_api=True)

    def _refused(self, refusal: HTTPError, *, engine_api: bool) -> Route:
        return Route("", (), self.ingest_max_body, engine_api=engine_api, refusal=refusal)
