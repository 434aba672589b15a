"""The WAMP session to the router, reconnecting forever, visible to HTTP handlers.

HTTP requests must not wait for a router that is gone: ``SessionHolder.session``
is None while disconnected, so handlers answer 503 at once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from autobahn.twisted.component import Component
from autobahn.twisted.wamp import Session
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from common.contract import UNAVAILABLE
from common.errors import RetryLater
from common.lazy_log_args import AUTOBAHN, install

log = Logger()
# autobahn formats its debug and trace arguments on every message, logged or not.
install(AUTOBAHN)

OnJoin = Callable[[ISession], Awaitable[None]]
T = TypeVar("T")


class RouterUnavailable(RetryLater):
    """No session to the router right now (HTTP 503, WAMP unavailable)."""


def procedure(handler: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """``handler`` as a WAMP procedure: the one place where a RetryLater it raises becomes
    ``com.estrom.error.unavailable``, its reason the error's argument."""

    @functools.wraps(handler)
    async def call(*args: Any, **kwargs: Any) -> T:
        try:
            return await handler(*args, **kwargs)
        except RetryLater as exc:
            raise ApplicationError(UNAVAILABLE.uri, exc.reason) from None

    return call


class CallTimedOut(Exception):
    """The router did not answer a call within its time (lost, or slow)."""


def call_within(
    session: ISession, clock: IReactorTime, timeout: float, procedure: str, *args: Any
) -> Deferred[Any]:
    """``session.call(procedure, *args)``, failing with CallTimedOut after ``timeout`` seconds.

    At the timeout the call is left to finish unobserved rather than
    cancelled: autobahn's canceller sends a CANCEL, and on a session already
    gone that raises inside the cancellation, so the call would never fire at
    all. Cancelling the returned Deferred (the HTTP client left) cancels the
    call too, where the session can still say so.
    """
    call = session.call(procedure, *args)

    def give_up(_result: Deferred[Any]) -> None:
        if timer.active():
            timer.cancel()
        try:
            call.cancel()
        except Exception as exc:  # the session went away meanwhile: nothing left to cancel
            log.debug("router.call_cancel_failed", procedure=procedure, error=repr(exc))

    result: Deferred[Any] = Deferred(give_up)

    def expire() -> None:
        if not result.called:
            result.errback(CallTimedOut(f"{procedure} got no answer within {timeout:g}s"))

    timer = clock.callLater(timeout, expire)

    def settle(outcome: Any) -> None:
        if timer.active():
            timer.cancel()
        if result.called:
            return  # timed out, or given up on: the late answer is dropped (a failure too)
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)

    call.addBoth(settle)
    return result


class QuietSession(Session):
    """Errors we raise on purpose (invalid query, ...) are answers, not log lines."""

    def onUserError(self, fail: Any, msg: str) -> None:
        if isinstance(getattr(fail, "value", None), ApplicationError):
            return
        super().onUserError(fail, msg)


class _FirstAttemptNotAWarning:
    """autobahn's Component logs every connection attempt at ``warn``, the first too.

    That first attempt (delay 0) is the normal start of every service, not
    trouble: it goes to ``debug``. Retries keep their ``warn``. Everything else
    is passed to autobahn's own logger unchanged.
    """

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def warn(self, format: str, **kwargs: Any) -> None:
        if format.startswith("trying transport") and kwargs.get("transport_delay") == 0:
            self._logger.debug(format, **kwargs)
        else:
            self._logger.warn(format, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


class SessionHolder:
    """Owns the autobahn Component and tracks the currently joined session."""

    def __init__(
        self,
        url: str,
        realm: str,
        on_join: OnJoin | None = None,
        *,
        authid: str = "",
        secret: str = "",
    ) -> None:
        self.session: ISession | None = None
        self._on_join = on_join
        self.component = Component(
            transports=[
                {
                    "type": "websocket",
                    "url": url,
                    # CBOR first: autobahn decodes JSON with a pure-Python scanner
                    # (~10x slower than cbor2 for a publish of hits, in the router
                    # as much as here); CBOR also keeps integers of any size.
                    # Browsers keep JSON; the router translates.
                    "serializers": ["cbor", "json"],
                    # autobahn's defaults and docstring disagree; say what we mean:
                    # retry forever, quickly at first, never more than 2 s apart: a
                    # restarted router is back in use (and tails' gaps end) soon after.
                    "max_retries": -1,
                    "initial_retry_delay": 0.25,
                    "max_retry_delay": 2.0,
                    "retry_delay_growth": 1.5,
                    "retry_delay_jitter": 0.1,
                    "options": {"auto_ping_interval": 10.0, "auto_ping_timeout": 5.0},
                }
            ],
            realm=realm,
            # WAMP-CRA: the secret never crosses the wire. Without one we join
            # anonymously, which the router allows only what a browser may do.
            authentication={"wampcra": {"authid": authid, "secret": secret}} if secret else None,
            session_factory=QuietSession,
        )
        self.component.log = _FirstAttemptNotAWarning(self.component.log)
        self.component.on("join", self._joined)
        self.component.on("leave", self._left)
        self.component.on("disconnect", self._disconnected)
        self._join_callbacks: list[Callable[[ISession], None]] = []

    def next_join(self) -> Deferred[None]:
        """A Deferred that fires after the next (re)join."""
        d: Deferred[None] = Deferred()
        self.when_joined(lambda _session: None if d.called else d.callback(None))
        return d

    def when_joined(self, callback: Callable[[ISession], None]) -> None:
        """Call ``callback(session)`` after every (re)join, once set-up is done."""
        self._join_callbacks.append(callback)

    async def _joined(self, session: ISession, details: Any) -> None:
        if self._on_join is not None:
            await self._on_join(session)
        self.session = session
        log.info("router.joined", realm=details.realm, session_id=details.session)
        for callback in self._join_callbacks:
            callback(session)

    def _left(self, session: ISession, details: Any) -> None:
        if self.session is session:
            self.session = None
        log.warn("router.left", reason=getattr(details, "reason", None))

    def _disconnected(self, session: ISession, was_clean: bool) -> None:
        if self.session is session:
            self.session = None

    def require(self) -> ISession:
        session = self.session
        if session is None or not session.is_attached():
            raise RouterUnavailable("not connected to the router")
        return session

    def start(self, reactor: Any) -> Any:
        return self.component.start(reactor)

    async def stop(self) -> None:
        await self.component.stop()
