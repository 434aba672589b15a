"""The one place that talks to Elasticsearch.

elasticsearch-py is synchronous; calls run in a bounded thread pool and come
back as Deferreds, so the reactor never blocks and the number of concurrent
engine requests is a setting.

Client and server majors must fit: client 8 sends ``compatible-with=8``
headers a 7.x server refuses, client 9 refuses servers below 9. estrom runs
the percolator of Elasticsearch 7.x (the only line whose percolator module is
published on Maven Central), so it pins ``elasticsearch>=7.17,<8`` and checks
both sides here, at start-up, with a clear message.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import elasticsearch
from elasticsearch import Elasticsearch
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

#: Engine versions estrom supports (inclusive lower, exclusive upper bound).
SUPPORTED_ENGINE = ((7, 10, 0), (8, 0, 0))
#: The client major that fits those servers.
SUPPORTED_CLIENT_MAJOR = 7


class EngineUnavailable(Exception):
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


def check_engine_info(info: dict[str, Any]) -> tuple[int, int, int]:
    """Validate ``GET /`` of the engine; return its version or raise UnsupportedEngine."""
    version = info.get("version") or {}
    distribution = version.get("distribution", "elasticsearch")
    if distribution != "elasticsearch":
        raise UnsupportedEngine(f"engine is {distribution}, estrom needs Elasticsearch 7.10 to 7.17")
    number = parse_version(str(version.get("number", "0")))
    low, high = SUPPORTED_ENGINE
    if not low <= number < high:
        raise UnsupportedEngine(
            f"Elasticsearch {'.'.join(map(str, number))} is not supported; estrom needs 7.10 <= version < 8.0"
        )
    return number


def _reason(exc: elasticsearch.TransportError) -> tuple[str, str]:
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
    result = next(iter(item.values()), {})
    status = int(result.get("status", 500))
    if 200 <= status < 300:
        return None
    return classify(status, *_error_reason(result.get("error")))


def translate_error(exc: Exception) -> Exception:
    """Map client exceptions to the two kinds the services act on."""
    if isinstance(exc, elasticsearch.ConnectionError):
        return EngineUnavailable(f"engine unreachable: {exc.__class__.__name__}")
    if isinstance(exc, elasticsearch.TransportError):
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        return classify(status, *_reason(exc))
    if isinstance(exc, elasticsearch.ElasticsearchException):
        return EngineUnavailable(f"engine error: {exc}")
    return exc


def _daemon_thread(*args: Any, **kwargs: Any) -> threading.Thread:
    return threading.Thread(*args, daemon=True, **kwargs)


class Engine:
    """Elasticsearch client whose calls return Deferreds from a bounded thread pool."""

    def __init__(self, url: str, *, timeout: float, concurrency: int, reactor: IReactorThreads) -> None:
        check_client_version()
        self.url = url
        self.client = Elasticsearch(
            hosts=[url],
            timeout=timeout,
            max_retries=0,
            retry_on_timeout=False,
        )
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=concurrency, name="engine")
        # Daemon workers: a call stuck on a wedged engine (up to the timeout)
        # must not hold a stopping process; see close().
        self._pool.threadFactory = _daemon_thread  # type: ignore[method-assign]
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

    def close(self) -> None:
        """Stop the thread pool; with a call still running (hung engine), leave it to die with the process."""
        if self._pool.started and not self._pool.working:
            self._pool.stop()

    async def run(self, fn: Callable[[Elasticsearch], T]) -> T:
        """Run ``fn(client)`` off the reactor thread, translating engine errors."""
        try:
            return await deferToThreadPool(self._reactor, self._pool, fn, self.client)
        except Exception as exc:
            raise translate_error(exc) from exc

    async def check(self) -> tuple[int, int, int]:
        """Version handshake; raises UnsupportedEngine or EngineUnavailable."""
        info = await self.run(lambda es: es.info())
        return check_engine_info(info)

    async def ping(self) -> bool:
        try:
            await self.run(lambda es: es.cluster.health(timeout="1s"))
        except (EngineUnavailable, EngineRejected):
            return False
        return True
