"""The subscriptions the router counts against quotas, kept current by crossbar's meta events.

crossbar tells an authorizer of each subscription it allows, not of its
end: the count of what a caller holds is given back from
``wamp.subscription.on_unsubscribe`` and ``wamp.session.on_leave``, and the
topic of a subscription id is learnt from ``wamp.subscription.on_create``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from common.access.quotas import ConcurrentCounter


class HeldSubscriptions:
    """Who each session is, which topics it holds under which quota key, and each subscription's topic."""

    def __init__(self, counter: ConcurrentCounter) -> None:
        self.counter = counter
        #: session id -> (identity name, quota key)
        self.sessions: dict[int, tuple[str, str]] = {}
        #: session id -> {topic uri: quota key} of its subscriptions we counted
        self.held: dict[int, dict[str, str]] = {}
        #: subscription id -> topic uri
        self.topics: dict[int, str] = {}

    def remember(self, session_id: Any, name: str, key: str) -> None:
        """The identity and quota key of a session, for ``admit`` and rechecks."""
        if isinstance(session_id, int):
            self.sessions[session_id] = (name, key)

    def hold(self, session_id: int, uri: str, key: str) -> None:
        """Count ``uri`` for the session once (QuotaExceeded, nothing held, when over a limit)."""
        held = self.held.setdefault(session_id, {})
        if uri not in held:
            self.counter.acquire(key)
            held[uri] = key

    def holders(self) -> Iterator[tuple[int, str, str]]:
        """(session id, topic, identity name) of every counted subscription."""
        for session_id, held in list(self.held.items()):
            name = self.sessions.get(session_id, ("", ""))[0]
            for uri in held:
                yield session_id, uri, name

    def subscription_of(self) -> dict[str, int]:
        """Topic -> subscription id, for ``wamp.subscription.remove_subscriber``."""
        return {uri: sub_id for sub_id, uri in self.topics.items()}

    def on_create(self, session_id: int, details: Mapping[str, Any]) -> None:
        if isinstance(details, Mapping) and "id" in details:
            self.topics[int(details["id"])] = str(details.get("uri", ""))

    def on_unsubscribe(self, session_id: int, subscription_id: int) -> None:
        uri = self.topics.get(subscription_id)
        held = self.held.get(session_id)
        if uri is None or not held or uri not in held:
            return
        self.counter.release(held.pop(uri))

    def on_delete(self, session_id: int, subscription_id: int) -> None:
        self.topics.pop(subscription_id, None)

    def on_leave(self, session_id: int, *_args: Any) -> None:
        self.sessions.pop(session_id, None)
        for key in (self.held.pop(session_id, None) or {}).values():
            self.counter.release(key)
