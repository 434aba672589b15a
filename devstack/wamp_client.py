"""A blocking WAMP client for tests and benchmarks: a real autobahn session on a reactor thread.

Tests are plain synchronous pytest functions; the Twisted reactor runs in a
daemon thread for the whole session and every call crosses over with
``blockingCallFromThread``. Events land in thread-safe sinks that tests wait
on with bounded timeouts.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import txaio
from autobahn.twisted.component import Component
from autobahn.wamp.types import PublishOptions, SubscribeOptions
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import blockingCallFromThread

from common.lazy_log_args import AUTOBAHN, install

txaio.use_twisted()
install(AUTOBAHN)  # the load generator's share of the CPU: no colouring of unlogged debug lines
_started = threading.Lock()
_thread: threading.Thread | None = None


def ensure_reactor() -> None:
    global _thread
    with _started:
        if _thread is None:
            _thread = threading.Thread(
                target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True, name="reactor"
            )
            _thread.start()


def on_reactor(fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
    """Run ``fn`` (may return a Deferred or coroutine) on the reactor; block for its result."""
    ensure_reactor()

    def call() -> Deferred[Any]:
        result = fn(*args)
        if hasattr(result, "__await__") and not isinstance(result, Deferred):
            result = ensureDeferred(result)
        if isinstance(result, Deferred):
            result.addTimeout(timeout, reactor)
            return result
        d: Deferred[Any] = Deferred()
        d.callback(result)
        return d

    return blockingCallFromThread(reactor, call)


class EventSink:
    """Collects the hits of one subscription; wait on them with a timeout."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.events: list[tuple[Any, ...]] = []
        self._cond = threading.Condition()

    def __call__(self, *args: Any, **_kwargs: Any) -> None:
        with self._cond:
            self.events.append(args)
            self._cond.notify_all()

    @property
    def hits(self) -> list[Any]:
        with self._cond:
            return [hit for event in self.events for hit in event]

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout: float = 15.0) -> list[Any]:
        with self._cond:
            ok = self._cond.wait_for(lambda: predicate([h for e in self.events for h in e]), timeout=timeout)
            hits = [h for e in self.events for h in e]
        if not ok:
            raise AssertionError(f"{self.topic}: condition not met within {timeout}s; hits so far: {hits!r}")
        return hits

    def wait_for_count(self, n: int, timeout: float = 15.0) -> list[Any]:
        return self.wait_for(lambda hits: len(hits) >= n, timeout)

    def wait_for_marker(self, marker: str, timeout: float = 15.0) -> list[Any]:
        """Wait until a hit whose ``_source.marker`` equals ``marker`` arrived.

        Events on one topic arrive in publish order, so everything published
        on this topic before the marker has been delivered once it is here.
        """
        return self.wait_for(lambda hits: any(h["_source"].get("marker") == marker for h in hits), timeout)


class JoinRefused(Exception):
    """The router ended the session before it joined (ABORT): ``reason`` is the WAMP URI."""

    def __init__(self, reason: str, message: str | None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class ConnectFailed(RuntimeError):
    """No session: the transport never connected or was lost before the join."""


class WampClient:
    """One joined session: ``call``, ``subscribe``, ``publish``, ``close``.

    Joins anonymously, as a browser does, unless given ``authid`` and
    ``secret`` (WAMP-CRA), e.g. the admin principal for meta API calls, or a
    reader's ``ticket`` (its token).
    """

    def __init__(
        self,
        url: str,
        realm: str = "estrom",
        timeout: float = 20.0,
        authid: str | None = None,
        secret: str | None = None,
        serializers: tuple[str, ...] = ("json",),
        ticket: str | None = None,
    ) -> None:
        self.url = url
        self.session: Any = None
        self.details: Any = None
        joined: Deferred[Any] = Deferred()
        authentication: dict[str, Any] | None = None
        if ticket is not None:  # a reader's token, as the page logs in
            authentication = {"ticket": {"ticket": ticket, **({"authid": authid} if authid else {})}}
        elif authid:
            authentication = {"wampcra": {"authid": authid, "secret": secret}}
        self._component = Component(
            transports=[
                {
                    "type": "websocket",
                    "url": url,
                    "max_retries": 0,
                    "serializers": list(serializers),
                    # autobahn's default of 5 s is shorter than a loaded CI machine's first handshake
                    "options": {"open_handshake_timeout": timeout},
                }
            ],
            realm=realm,
            authentication=authentication,
        )

        def on_join(session: Any, details: Any) -> None:
            self.session = session
            self.details = details
            if not joined.called:
                joined.callback(session)

        def on_leave(_session: Any, details: Any) -> None:
            if not joined.called:
                joined.errback(JoinRefused(details.reason, details.message))

        failures: list[BaseException] = []

        def on_connect_failure(_component: Any, error: BaseException) -> None:
            failures.append(error)

        def on_done_failed(failure: Any) -> None:
            # autobahn says only "Exhausted all transport connect attempts": name the cause too
            if not joined.called:
                cause = failures[-1] if failures else failure.value
                joined.errback(ConnectFailed(f"{url}: {type(cause).__name__}: {cause}"))

        def on_start() -> Deferred[Any]:
            self._component.on("join", on_join)
            self._component.on("leave", on_leave)
            self._component.on("connectfailure", on_connect_failure)
            done = self._component.start(reactor)
            done.addErrback(on_done_failed)
            return joined

        on_reactor(on_start, timeout=timeout)

    def call(self, procedure: str, *args: Any, timeout: float = 30.0, **kwargs: Any) -> Any:
        return on_reactor(lambda: self.session.call(procedure, *args, **kwargs), timeout=timeout)

    def subscribe(self, topic: str, match: str | None = None) -> EventSink:
        sink = EventSink(topic)
        options = SubscribeOptions(match=match) if match else None
        on_reactor(lambda: self.session.subscribe(sink, topic, options=options))
        return sink

    def publish(self, topic: str, *args: Any, acknowledge: bool = True) -> Any:
        return on_reactor(
            lambda: self.session.publish(topic, *args, options=PublishOptions(acknowledge=acknowledge))
        )

    def close(self) -> None:
        if self.session is not None and self.session.is_attached():
            with contextlib.suppress(Exception):
                on_reactor(lambda: self.session.leave(), timeout=5)
        with contextlib.suppress(Exception):
            on_reactor(self._component.stop, timeout=5)
