"""What the router's subscription ids stand for, learned once instead of every sweep.

``wamp.subscription.list`` answers only ids; asking ``wamp.subscription.get``
for each of them on every sweep costs the router one call per subscription
per interval (10,000 calls every 30 s with 10,000 subscribers). The meta
events ``wamp.subscription.on_create`` (id, uri, match) and ``on_delete``
(id) say the same as they happen, so a beater keeps the map and a sweep only
looks up ids it has not heard of (created before it joined, or whose event
is still on its way). Ids are per router run: a new session starts a new map.

The map also answers whether a sid's topic is subscribed on that router at
all (``covers``), kept as it changes: with several router nodes the
publisher asks every other node's map for every sid of every batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.contract import TOPIC_PREFIX

MATCHES = ("exact", "prefix", "wildcard")


@dataclass(frozen=True)
class Subscription:
    uri: str
    match: str


def parse_details(details: Any) -> tuple[int, Subscription] | None:
    """(id, subscription) from an on_create event or a get answer; None if malformed."""
    if not isinstance(details, Mapping):
        return None
    sub_id, uri, match = details.get("id"), details.get("uri"), details.get("match", "exact")
    if not isinstance(sub_id, int) or not isinstance(uri, str) or match not in MATCHES:
        return None
    return sub_id, Subscription(uri, match)


def listed_ids(listing: Any) -> list[int]:
    """Every id of a ``wamp.subscription.list`` answer, whatever its match policy."""
    if not isinstance(listing, Mapping):
        return []
    return [i for kind in MATCHES for i in listing.get(kind) or [] if isinstance(i, int)]


@dataclass
class Resolution:
    """A listing split into the subscriptions already known and the ids to look up."""

    known: list[Subscription]
    unknown: list[int]


#: ``what_it_covers``: every docs-for- topic, one sid, the sids starting with a prefix, or none
EVERY, SID, PREFIX = "every", "sid", "prefix"


def what_it_covers(sub: Subscription) -> tuple[str, str] | None:
    """Which ``docs-for-`` topics a subscription receives: (EVERY, ""), (SID, sid), (PREFIX, p) or None."""
    if sub.match == "prefix" and TOPIC_PREFIX.startswith(sub.uri):
        return EVERY, ""
    if sub.match == "wildcard" and sub.uri == "":
        return EVERY, ""
    if not sub.uri.startswith(TOPIC_PREFIX) or (sub.match == "wildcard" and "." in sub.uri):
        return None
    return (PREFIX if sub.match == "prefix" else SID), sub.uri[len(TOPIC_PREFIX) :]


class SubscriptionTopics:
    """Subscription id → (uri, match) for one router session."""

    def __init__(self) -> None:
        self._known: dict[int, Subscription] = {}
        #: (EVERY|SID|PREFIX, key) → how many known subscriptions cover it so
        self._covered: dict[tuple[str, str], int] = {}

    def __len__(self) -> int:
        return len(self._known)

    def __contains__(self, sub_id: object) -> bool:
        return sub_id in self._known

    def ids(self) -> frozenset[int]:
        return frozenset(self._known)

    def learn(self, details: Any) -> Subscription | None:
        """Remember what an on_create event or a get answer says; the subscription, or None."""
        parsed = parse_details(details)
        if parsed is None:
            return None
        sub_id, subscription = parsed
        self.forget(sub_id)
        self._known[sub_id] = subscription
        covers = what_it_covers(subscription)
        if covers is not None:
            self._covered[covers] = self._covered.get(covers, 0) + 1
        return subscription

    def forget(self, sub_id: Any) -> None:
        subscription = self._known.pop(sub_id, None)
        covers = None if subscription is None else what_it_covers(subscription)
        if covers is not None:
            left = self._covered[covers] - 1
            if left:
                self._covered[covers] = left
            else:
                del self._covered[covers]

    def covers(self, sid: str) -> bool:
        """Whether a known subscription receives ``docs-for-<sid>``."""
        covered = self._covered
        if not covered:
            return False
        if (SID, sid) in covered or (EVERY, "") in covered:
            return True
        return any(kind == PREFIX and sid.startswith(key) for kind, key in covered)

    def resolve(self, known_before: frozenset[int], listing: Any) -> Resolution:
        """Split a listing; forget ids known before it was asked for that it no longer has.

        Only ids known *before* the listing are forgotten: one learned while
        the answer was on its way may be newer than the listing, not gone.
        """
        listed = listed_ids(listing)
        for sub_id in known_before.difference(listed):
            self.forget(sub_id)
        known = [self._known[i] for i in listed if i in self._known]
        unknown = [i for i in listed if i not in self._known]
        return Resolution(known, unknown)


def coverage(subscriptions: Iterable[Subscription]) -> tuple[set[str], frozenset[str]] | None:
    """(sids subscribed exactly, sid prefixes covered by prefix subscriptions).

    None when a pattern subscription covers every ``docs-for-*`` topic (a
    prefix of ``docs-for-`` itself, or the one-part wildcard ``""``): then
    nothing may be deactivated.
    """
    sids: set[str] = set()
    prefixes: set[str] = set()
    for sub in subscriptions:
        covers = what_it_covers(sub)
        if covers is None:
            continue
        kind, key = covers
        if kind == EVERY:
            return None
        (prefixes if kind == PREFIX else sids).add(key)
    return sids, frozenset(prefixes)
