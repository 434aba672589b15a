"""Publisher failure paths, on a fake session and clock."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from beater.publishing.publisher import Publisher, PublishFailed
from common.router_tier import RouterTier


class BreakingSession:
    """Takes ``ok`` publishes, then raises as autobahn does once the transport is gone."""

    def __init__(self, ok: int) -> None:
        self.ok = ok
        self.sent: list[Deferred[Any]] = []

    def publish(self, topic: str, *args: Any, options: Any = None) -> Deferred[Any]:
        if len(self.sent) == self.ok:
            raise ConnectionError("transport lost")
        d: Deferred[Any] = Deferred()
        self.sent.append(d)
        return d


class Holder:
    def __init__(self, session: Any) -> None:
        self.session = session

    def require(self) -> Any:
        return self.session


def hits(n: int) -> list[dict[str, Any]]:
    return [{"_index": "events", "_source": {"n": i}} for i in range(n)]


def test_a_session_that_breaks_part_way_fails_the_batch_and_leaves_nothing_unobserved() -> None:
    session = BreakingSession(ok=1)
    publisher = Publisher(RouterTier([Holder(session)]), Clock(), timeout=5.0)  # type: ignore[list-item]
    with pytest.raises(ConnectionError):
        publisher.publish({"a" * 16: hits(1), "b" * 16: hits(2)})
    [sent] = session.sent
    sent.errback(ConnectionError("transport lost"))
    assert sent.result is None  # handled: no "Unhandled error in Deferred" when collected


def test_a_publish_not_acknowledged_in_time_is_publish_failed() -> None:
    session, clock = BreakingSession(ok=2), Clock()
    publisher = Publisher(RouterTier([Holder(session)]), clock, timeout=5.0)  # type: ignore[list-item]
    acked = publisher.publish({"a" * 16: hits(1), "b" * 16: hits(1)})
    session.sent[0].callback(None)
    clock.advance(5.0)
    failures: list[Any] = []
    acked.addErrback(failures.append)
    assert len(failures) == 1
    assert failures[0].check(PublishFailed)
