"""The one place that talks to the engine: Elasticsearch 7 or OpenSearch 2/3.

One interface, two families behind it. Callers hand ``Engine.run`` a function
of a client whose API both families' Python clients share (opensearch-py is a
fork of elasticsearch-py 7: ``search``, ``msearch``, ``bulk``, ``indices.*``
take the same arguments and answer the same shapes). Which client is used is
decided by the server itself, from ``GET /``: elasticsearch-py 7 refuses any
server that is not Elasticsearch (its product check), and opensearch-py is
the client OpenSearch publishes for itself.

Why not one REST client on Twisted for both: every query-store and percolate
call is written against this shared client API, and the thread pool already
keeps the reactor free; replacing it would touch every caller for a speed-up
the benchmarks do not ask for (the engine's own percolation is the ceiling,
docs/performance.md).

Both clients are synchronous; calls run in a bounded thread pool and come back
as Deferreds, so the reactor never blocks and the number of concurrent engine
requests is a setting. ``ESTROM_ENGINE_URL`` may name several nodes of one
cluster: a request goes to a live node, one refused or broken is retried on
the next, and a node marked dead is tried again after a short back-off, so it
comes back when it answers. No call waits longer than the engine timeout in
all, retries included.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import elasticsearch
import opensearchpy
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorThreads, IReactorTime
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from common.engine_urls import parse_urls
from common.errors import RetryLater
from common.fast_json import EngineSerializer

T = TypeVar("T")

#: Engine versions estrom supports, per family (inclusive lower, exclusive upper bound).
SUPPORTED_ENGINES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "elasticsearch": ((7, 10, 0), (8, 0, 0)),
    "opensearch": ((2, 0, 0), (4, 0, 0)),
}
#: The versions ``scripts/test`` runs against (README "Supported engines").
TESTED_ENGINES = {("elasticsearch", (7, 17, 29)), ("opensearch", (2, 19, 6)), ("opensearch", (3, 8, 0))}
#: The elasticsearch-py major that fits the supported Elasticsearch servers.
SUPPORTED_CLIENT_MAJOR = 7
#: Seconds a node that failed is left alone before it is tried again (doubling while it stays dead).
DEAD_NODE_BACKOFF = 1.0
FAMILY_NAMES = {"elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


class EngineUnavailable(RetryLater):
    """The engine cannot be reached or is overloaded: retry later (HTTP 503)."""


class EngineRejected(Exception):
    """The engine refused the request itself (HTTP 4xx): retrying will not help."""

    def __init__(self, status: int, reason: str, error_type: str = "") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.error_type = error_type


class UnsupportedEngine(RuntimeError):
    """Client or server version outside what estrom supports."""


@dataclass(frozen=True)
class ServerInfo:
    """What the start-up check found: family, version, and whether a test runs against it."""

    family: str
    version: tuple[int, int, int]

    @property
    def tested(self) -> bool:
        return (self.family, self.version) in TESTED_ENGINES

    def describe(self) -> str:
        """``"OpenSearch 2.19.6 (supported, tested)"``: the start-up line."""
        tested = "tested" if self.tested else "not tested here"
        return f"{FAMILY_NAMES[self.family]} {'.'.join(map(str, self.version))} (supported, {tested})"


def parse_version(text: str) -> tuple[int, int, int]:
    """``"7.17.29"`` (or ``"7.17.29-SNAPSHOT"``) to ``(7, 17, 29)``."""
    core = text.split("-", 1)[0]
    parts = [int(p) for p in core.split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def check_client_version(client_version: tuple[int, ...] = elasticsearch.VERSION) -> None:
    if client_version[0] != SUPPORTED_CLIENT_MAJOR:
        raise UnsupportedEngine(
            f"elasticsearch-py {'.'.join(map(str, client_version))} is installed; estrom needs "
            f"client major {SUPPORTED_CLIENT_MAJOR} to talk to Elasticsearch 7.x"
        )


def check_engine_info(info: dict[str, Any]) -> ServerInfo:
    """Validate ``GET /`` of the engine; return what it is or raise UnsupportedEngine."""
    version = info.get("version") or {}
    family = str(version.get("distribution", "elasticsearch"))
    number = parse_version(str(version.get("number", "0")))
    spelled = ".".join(map(str, number))
    if family not in SUPPORTED_ENGINES:
        raise UnsupportedEngine(
            f"engine is {family} {spelled}: not supported; estrom needs Elasticsearch 7.10 to 7.17 "
            "or OpenSearch 2.x or 3.x"
        )
    low, high = SUPPORTED_ENGINES[family]
    if not low <= number < high:
        wanted = "7.10 <= version < 8.0" if family == "elasticsearch" else "2.0 <= version < 4.0"
        raise UnsupportedEngine(f"{FAMILY_NAMES[family]} {spelled} is not supported; estrom needs {wanted}")
    return ServerInfo(family, number)


def _reason(exc: Any) -> tuple[str, str]:
    """The most specific reason the engine gave, as (type, reason)."""
    info = exc.info if isinstance(exc.info, dict) else {}
    error = info.get("error")
    if error is None:
        return "", str(exc.error)
    return _error_reason(error)


def _error_reason(error: Any) -> tuple[str, str]:
    """(type, reason) of an engine ``error`` object (a response's or a bulk item's)."""
    if isinstance(error, dict):
        causes = error.get("root_cause") or []
        # The top-level reason is often generic ("failed to create query");
        # the caused_by chain carries the parser's words.
        node: dict[str, Any] | None = error
        deepest = error
        while isinstance(node, dict):
            deepest = node
            node = node.get("caused_by")
        first = causes[0] if causes and isinstance(causes[0], dict) else error
        reason = str(error.get("reason") or first.get("reason") or "")
        deep_reason = str(deepest.get("reason") or "")
        if deep_reason and deep_reason not in reason:
            reason = f"{reason}: {deep_reason}" if reason else deep_reason
        return str(error.get("type") or first.get("type") or ""), reason
    return "", str(error)


def classify(status: int, error_type: str, reason: str) -> Exception:
    """A refusal (4xx but 429) is EngineRejected; anything else is worth a retry."""
    if 400 <= status < 500 and status != 429:
        return EngineRejected(status, reason or error_type, error_type)
    return EngineUnavailable(f"engine answered {status}: {reason or error_type}")


def bulk_item_error(item: dict[str, Any]) -> Exception | None:
    """Why one ``_bulk`` item failed (as translate_error would say), or None if it succeeded."""
    result: dict[str, Any] = next(iter(item.values()), {})
    status = int(result.get("status", 500))
    if 200 <= status < 300:
        return None
    return classify(status, *_error_reason(result.get("error")))


_CONNECTION_ERRORS = (elasticsearch.ConnectionError, opensearchpy.ConnectionError)
#: Either client's HTTP error (``status_code``, ``info``): for ``except`` inside ``Engine.run`` functions.
TRANSPORT_ERRORS = (elasticsearch.TransportError, opensearchpy.TransportError)
#: Either client's 404.
NOT_FOUND_ERRORS = (elasticsearch.NotFoundError, opensearchpy.NotFoundError)
_TRANSPORT_ERRORS = TRANSPORT_ERRORS
_CLIENT_ERRORS = (elasticsearch.ElasticsearchException, opensearchpy.OpenSearchException)


def translate_error(exc: Exception) -> Exception:
    """Map either client's exceptions to the two kinds the services act on."""
    if isinstance(exc, _CONNECTION_ERRORS):
        return EngineUnavailable(f"engine unreachable: {exc.__class__.__name__}")
    if isinstance(exc, _TRANSPORT_ERRORS):
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        return classify(status, *_reason(exc))
    if isinstance(exc, _CLIENT_ERRORS):
        return EngineUnavailable(f"engine error: {exc}")
    return exc


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    return threading.Thread(*args, daemon=True, **kwargs)


def make_client(family: str, urls: list[str], timeout: float) -> Any:
    """The family's own client over every node URL, retrying a broken node on the next one."""
    options: dict[str, Any] = {
        "hosts": urls,
        "timeout": timeout,
        # A refused or reset connection moves on to the next node; a timeout
        # does not (it already used the whole budget).
        "max_retries": len(urls) - 1,
        "retry_on_timeout": False,
        "dead_timeout": DEAD_NODE_BACKOFF,
        "timeout_cutoff": 5,
        # orjson for request and answer bodies (the percolate requests carry every document).
        "serializer": EngineSerializer(),
    }
    if family == "opensearch":
        return opensearchpy.OpenSearch(**options)
    check_client_version()
    return elasticsearch.Elasticsearch(**options)


def watch_deadline(clock: IReactorTime, d: Deferred[Any], started: list[float], budget: float) -> None:
    """Cancel ``d`` once ``budget`` seconds have passed since ``started[0]``, if it has not fired.

    A worker thread appends the clock's time to ``started`` when it takes the
    call. One timer is armed here, on the reactor, for the whole budget, and
    re-armed only when it fires early (the call was still queued, or was taken
    late): the worker need not wake the reactor to arm it, which cost every
    engine request a reactor turn of its own.
    """

    timer: IDelayedCall | None = None

    def check() -> None:
        nonlocal timer
        timer = None
        if d.called:
            return
        remaining = budget if not started else started[0] + budget - clock.seconds()
        if remaining > 0:
            timer = clock.callLater(remaining, check)
        else:
            d.cancel()

    def disarm(result: Any) -> Any:
        if timer is not None and timer.active():
            timer.cancel()
        return result

    timer = clock.callLater(budget, check)
    d.addBoth(disarm)


class Engine:
    """The engine's client; its calls return Deferreds from a bounded thread pool."""

    def __init__(self, url: str, *, timeout: float, concurrency: int, reactor: IReactorThreads) -> None:
        check_client_version()
        self.url = url
        self.urls = parse_urls(url)
        self.timeout = timeout
        self.server: ServerInfo | None = None
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=concurrency, name="engine")
        # Daemon workers: a call stuck on a wedged engine (up to the timeout)
        # must not hold a stopping process; see close().
        self._pool.threadFactory = _daemon_thread  # type: ignore[assignment]
        self._pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", self.close)  # type: ignore[attr-defined]

    @classmethod
    def from_settings(cls, settings: Any, reactor: IReactorThreads) -> Engine:
        """The engine client of a service, as its ``ESTROM_ENGINE_*`` settings say."""
        return cls(
            settings.engine_url,
            timeout=settings.engine_timeout,
            concurrency=settings.engine_concurrency,
            reactor=reactor,
        )

    @property
    def family(self) -> str | None:
        """``"elasticsearch"`` or ``"opensearch"`` once a node has answered, else None."""
        return self.server.family if self.server else None

    def close(self) -> None:
        """Stop the thread pool; with a call still running (hung engine), leave it to die with the process."""
        if self._pool.started and not self._pool.working:
            self._pool.stop()

    def _identify(self) -> Any:
        """The client of the server's family, asking ``GET /`` first if no node answered yet."""
        with self._client_lock:
            if self._client is None:
                # opensearch-py has no product check: it reads ``GET /`` of either family.
                probe = make_client("opensearch", self.urls, self.timeout)
                try:
                    info = probe.info()
                finally:
                    probe.close()
                server = check_engine_info(info)
                self._client = make_client(server.family, self.urls, self.timeout)
                self.server = server
            return self._client

    def _call(self, started: list[float], fn: Callable[[Any], T]) -> T:
        # The budget starts when a worker takes the call, not while it queues
        # behind others (ESTROM_ENGINE_CONCURRENCY bounds those): watch_deadline reads this.
        started.append(self._reactor.seconds())  # type: ignore[attr-defined]
        return fn(self._identify())

    async def run(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` off the reactor thread, translating engine errors.

        The whole call, node retries included, is bounded by the engine timeout
        (a little slack over the client's own, so that its error names the cause).
        """
        outer: Deferred[T] = Deferred()
        started: list[float] = []
        inner: Deferred[T] = deferToThreadPool(self._reactor, self._pool, self._call, started, fn)
        inner.chainDeferred(outer)
        watch_deadline(self._reactor, outer, started, self.timeout + 0.25)  # type: ignore[arg-type]
        try:
            return await outer
        except CancelledError as exc:
            raise EngineUnavailable(f"engine did not answer within {self.timeout:g}s") from exc
        except UnsupportedEngine:
            raise
        except Exception as exc:
            raise translate_error(exc) from exc

    async def check(self) -> ServerInfo:
        """Version handshake; raises UnsupportedEngine or EngineUnavailable."""
        await self.run(lambda client: client.info())
        assert self.server is not None
        return self.server

    async def cluster_health(self) -> dict[str, Any] | None:
        """The cluster's health (status, nodes, unassigned shards), or None when no node answers."""
        try:
            # No wait_for_*: the answer is immediate, from whichever node answers.
            health = await self.run(lambda client: client.cluster.health(request_timeout=self.timeout))
        except (EngineUnavailable, EngineRejected, UnsupportedEngine):
            return None
        return {
            "status": health.get("status"),
            "nodes": health.get("number_of_nodes"),
            "unassigned_shards": health.get("unassigned_shards"),
        }

    async def ping(self) -> bool:
        """True while the cluster answers and every primary shard is assigned (green or yellow)."""
        health = await self.cluster_health()
        return health is not None and health["status"] in ("green", "yellow")


def sync_client(url: str, timeout: float = 30.0, **options: Any) -> Any:
    """A blocking client of the server's own family, for scripts and benchmarks (not the services).

    ``url`` may list several nodes, comma-separated; ``options`` go to the client (``maxsize``, ...).
    """
    urls = parse_urls(url)
    probe = opensearchpy.OpenSearch(hosts=urls, timeout=timeout)
    try:
        server = check_engine_info(probe.info())
    finally:
        probe.close()
    if server.family == "opensearch":
        return opensearchpy.OpenSearch(hosts=urls, timeout=timeout, **options)
    return elasticsearch.Elasticsearch(hosts=urls, timeout=timeout, **options)
