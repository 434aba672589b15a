"""The first, normal connection to the router is no warning; retries still are.

autobahn's Component logs each connection attempt at ``warn``; every service
start showed one. ``SessionHolder`` demotes the first attempt (delay 0) to
``debug``. Checked on a memory reactor: the attempt is made, nothing warns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import txaio
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher

from common.wamp import SessionHolder

txaio.use_twisted()


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    previous = txaio.get_global_log_level()
    txaio.set_global_log_level("debug")
    globalLogPublisher.addObserver(seen.append)
    try:
        yield seen
    finally:
        globalLogPublisher.removeObserver(seen.append)
        txaio.set_global_log_level(previous)


def attempts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if str(e.get("log_format", "")).startswith("trying transport")]


def test_first_connection_attempt_logs_no_warning(events) -> None:
    reactor = MemoryReactorClock()
    loop = txaio.config.loop
    txaio.config.loop = reactor  # txaio.sleep, autobahn's delay between attempts, on this reactor too
    try:
        holder = SessionHolder("ws://127.0.0.1:1/ws", "estrom")
        holder.start(reactor)
        reactor.advance(0)
    finally:
        txaio.config.loop = loop
    assert len(reactor.tcpClients) == 1  # the attempt was made
    (first,) = attempts(events)
    assert first["transport_delay"] == 0
    assert first["log_level"] == LogLevel.debug
    assert not [e for e in events if e.get("log_level") in (LogLevel.warn, LogLevel.error)]


def test_retries_are_still_warnings(events) -> None:
    holder = SessionHolder("ws://127.0.0.1:1/ws", "estrom")
    holder.component.log.warn(
        'trying transport {transport_idx} ("{transport_url}") using connect delay {transport_delay}',
        transport_idx=0,
        transport_url="ws://127.0.0.1:1/ws",
        transport_delay=0.3,
    )
    (retry,) = attempts(events)
    assert retry["log_level"] == LogLevel.warn
