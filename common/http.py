"""Small HTTP helpers shared by beater and tailor: JSON answers and errors.

Every error is a status plus a JSON body ``{"error": code, "reason": text}``;
handlers raise HTTPError (or RetryLater, common/errors.py) and the dispatcher
writes it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, ensureDeferred
from twisted.logger import Logger
from twisted.web.http import HTTPChannel, Request
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from common.contract import (
    BAD_REQUEST,
    INTERNAL,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    REQUEST_TOO_LONG,
    UNAVAILABLE,
    WireError,
)
from common.errors import DEFAULT_RETRY_AFTER, RetryLater
from common.metrics import CONTENT_TYPE, Metrics

log = Logger()

Handler = Callable[[Request, list[str]], Awaitable[None]]


class HTTPError(Exception):
    """An error answer: status, machine-readable code, human reason, extra members."""

    def __init__(
        self,
        status: int,
        code: str,
        reason: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.headers = headers or {}
        self.extra = extra

    @classmethod
    def of(
        cls, error: WireError, reason: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> HTTPError:
        """The contract's ``error`` (common/contract.py) answered for ``reason``."""
        return cls(error.status, error.code, reason, headers=headers, **extra)

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "reason": self.reason, **self.extra}


def retry_later_error(exc: RetryLater, retry_after: int) -> HTTPError:
    """The one HTTP answer of a condition that clears: 503, ``Retry-After`` (the condition's own,
    else ``retry_after``), ``{"error": "unavailable", "reason": ...}``."""
    wait = exc.retry_after if exc.retry_after is not None else retry_after
    return HTTPError.of(UNAVAILABLE, exc.reason, headers={"Retry-After": str(wait)})


def answered_or_gone(request: Request) -> bool:
    """Whether nothing more can be written: answered already, or the client went away.

    A request loses its ``channel`` when its connection is lost (that is
    also when ``notifyFinish()`` fails); no private attribute needed.
    """
    return bool(request.finished) or getattr(request, "channel", None) is None


def write_json(request: Request, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """Answer with JSON unless the client already went away."""
    if answered_or_gone(request):
        return
    data = json.dumps(body, ensure_ascii=False).encode("utf-8") + b"\n"
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())
    request.setHeader(b"content-length", str(len(data)).encode())
    request.write(data)
    request.finish()


def write_text(request: Request, status: int, text: str, content_type: str) -> None:
    write_bytes(request, status, text.encode("utf-8"), content_type)


def write_bytes(request: Request, status: int, data: bytes, content_type: str) -> None:
    if answered_or_gone(request):
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", content_type.encode())
    request.setHeader(b"content-length", str(len(data)).encode())
    request.write(data)
    request.finish()


def raw_json_response(
    status: int, phrase: str, code: str, reason: str, headers: dict[str, str] | None = None
) -> bytes:
    """A whole ``connection: close`` response, for refusals made below the request level."""
    body = json.dumps({"error": code, "reason": reason}).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n{extra}"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class JsonErrorChannel(HTTPChannel):
    """Twisted's own refusals (malformed request, line or headers too long) as JSON errors.

    Twisted answers those with a bare ``400`` or just drops the connection;
    every answer of ours is a status plus a JSON body, whoever refuses.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        refusal = raw_json_response(
            BAD_REQUEST.status, "Bad Request", BAD_REQUEST.code, "malformed HTTP request"
        )
        self.transport.write(refusal)
        self.loseConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        reason = f"request line or a header is over {self.MAX_LENGTH} bytes"
        self.transport.write(
            raw_json_response(REQUEST_TOO_LONG.status, "URI Too Long", REQUEST_TOO_LONG.code, reason)
        )
        self.loseConnection()


_TOKEN_PARAM = re.compile(r"([?&]token=)[^&]*")


class QuietSite(Site):
    """Access lines are per-request chatter: debug level, not the default log."""

    # Twisted types it as a factory of its own channel class; a subclass of HTTPChannel is one.
    protocol = JsonErrorChannel  # type: ignore[assignment]
    noisy = False
    displayTracebacks = False

    def log(self, request: Request) -> None:
        log.debug(
            "http.access",
            method=request.method.decode("ascii", "replace"),
            # ``?token=`` is a reader's secret: never in a log line.
            path=_TOKEN_PARAM.sub(r"\1<redacted>", request.uri.decode("utf-8", "replace"))[:200],
            status=request.code,
        )


V = TypeVar("V")


def match_route(
    routes: Mapping[tuple[str, tuple[str, ...]], V], method: str, segments: Sequence[str]
) -> tuple[V | None, list[str], bool]:
    """The value of ``(method, prefix)`` whose prefix starts ``segments``, the segments after it,
    and whether any route knows the path (a known path with another method is a 405)."""
    path_known = False
    for (m, prefix), value in routes.items():
        if tuple(segments[: len(prefix)]) == prefix:
            path_known = True
            if m == method:
                return value, list(segments[len(prefix) :]), True
    return None, [], path_known


def path_refusal(method: str, path_known: bool) -> HTTPError:
    """No route serves the request: 405 for a path known with other methods, 404 for the rest."""
    if path_known:
        return HTTPError.of(METHOD_NOT_ALLOWED, f"{method} not allowed here")
    return HTTPError.of(NOT_FOUND, "no such endpoint")


def serve(
    request: Request, handler: Handler, rest: list[str], *, retry_after: int, cancel_on_disconnect: bool
) -> Any:
    """Run ``handler`` and answer what it raises: HTTPError as it says, RetryLater as 503 with
    ``Retry-After`` (its own, else ``retry_after``), anything else as 500. With
    ``cancel_on_disconnect``, a handler still running when its client goes away
    (``notifyFinish()`` fails) is cancelled, as klein does: its awaited Deferred raises
    CancelledError."""

    async def run() -> None:
        try:
            await handler(request, rest)
        except HTTPError as err:
            write_json(request, err.status, err.body(), err.headers)
        except RetryLater as exc:
            later = retry_later_error(exc, retry_after)
            write_json(request, later.status, later.body(), later.headers)
        except CancelledError:
            if answered_or_gone(request):
                log.debug("http.client_gone", path=request.path.decode("utf-8", "replace"))
                return
            log.failure("http.handler_cancelled", path=request.path.decode("utf-8", "replace"))
            _internal(request)
        except Exception:
            log.failure("http.handler_failed", path=request.path.decode("utf-8", "replace"))
            _internal(request)

    running = ensureDeferred(run())
    if cancel_on_disconnect:
        request.notifyFinish().addErrback(lambda _gone: running.cancel())
    return NOT_DONE_YET


class Routes(Resource):
    """One leaf resource dispatching ``(method, first path segments)`` to async handlers.

    Routes are ``{(method, prefix_tuple): handler}``; the handler gets the
    remaining path segments. Unknown paths go to ``fallback`` if given (it
    may raise HTTPError), else are 404; wrong methods 405. Handlers are run by
    ``serve``: a RetryLater is 503 with ``Retry-After`` (``retry_after``:
    ``ESTROM_RETRY_AFTER``), and with ``cancel_on_disconnect`` a handler whose
    client went away is cancelled.
    """

    isLeaf = True

    def __init__(
        self,
        routes: dict[tuple[str, tuple[str, ...]], Handler],
        *,
        fallback: Handler | None = None,
        cancel_on_disconnect: bool = False,
        retry_after: int = DEFAULT_RETRY_AFTER,
    ) -> None:
        super().__init__()
        self.routes = routes
        self.fallback = fallback
        self.cancel_on_disconnect = cancel_on_disconnect
        self.retry_after = retry_after

    def render(self, request: Request) -> Any:
        method = request.method.decode("ascii", "replace")
        segments = [s.decode("utf-8", "replace") for s in request.postpath]
        if segments and segments[-1] == "":
            segments = segments[:-1]
        handler, rest, known = match_route(self.routes, method, segments)
        if handler is None and not known and self.fallback is not None:
            handler, rest = self.fallback, segments
        if handler is None:
            refusal = path_refusal(method, known)
            write_json(request, refusal.status, refusal.body())
            return NOT_DONE_YET
        return serve(
            request,
            handler,
            rest,
            retry_after=self.retry_after,
            cancel_on_disconnect=self.cancel_on_disconnect,
        )


def _internal(request: Request) -> None:
    error = HTTPError.of(INTERNAL, "internal error, see the service log")
    write_json(request, error.status, error.body())


async def write_health(request: Request, engine: Any, wamp: Any) -> None:
    """``/healthz``: 200 when engine and router answer, else 503 naming the one that does not."""
    # The cluster's health, whichever node answers: red (a primary shard
    # unassigned) cannot take every write, so it is not healthy either.
    cluster = await engine.cluster_health()
    engine_ok = cluster is not None and cluster["status"] in ("green", "yellow")
    nodes = wamp.states()  # one per router node (common/router_tier.py)
    router_ok = all(nodes)
    engine_state = "ok" if engine_ok else ("unreachable" if cluster is None else str(cluster["status"]))
    body: dict[str, Any] = {
        "status": "ok" if engine_ok and router_ok else "unavailable",
        "engine": engine_state,
        "router": "ok" if router_ok else "disconnected",
    }
    if len(nodes) > 1:
        body["router_nodes"] = ["ok" if joined else "disconnected" for joined in nodes]
    if cluster is not None:
        body["cluster"] = cluster
    write_json(request, 200 if engine_ok and router_ok else 503, body)


def write_metrics(request: Request, metrics: Metrics) -> None:
    """``/metrics`` in Prometheus text format (prometheus_client's exposition)."""
    write_bytes(request, 200, metrics.render(), CONTENT_TYPE)
