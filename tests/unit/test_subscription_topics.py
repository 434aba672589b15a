"""The subscription map: which ids a sweep knows, which it must look up, which it forgets."""

from __future__ import annotations

from typing import Any

from beater.queries.subscription_topics import (
    Subscription,
    SubscriptionTopics,
    coverage,
    listed_ids,
    parse_details,
)


def created(sub_id: int, uri: str, match: str = "exact") -> dict[str, Any]:
    """What crossbar's ``wamp.subscription.on_create`` (and ``get``) carries."""
    return {"id": sub_id, "created": "2024-01-01T00:00:00Z", "uri": uri, "match": match}


def listing(exact: list[int], prefix: list[int] | None = None) -> dict[str, list[int]]:
    return {"exact": exact, "prefix": prefix or [], "wildcard": []}


def test_meta_events_teach_the_map_and_a_listing_of_known_ids_needs_no_lookup() -> None:
    topics = SubscriptionTopics()
    topics.learn(created(1, "docs-for-a"))
    topics.learn(created(2, "docs-for-b", "prefix"))
    before = topics.ids()
    resolution = topics.resolve(before, listing([1], [2]))
    assert resolution.unknown == []
    assert resolution.known == [Subscription("docs-for-a", "exact"), Subscription("docs-for-b", "prefix")]


def test_only_ids_not_heard_of_are_looked_up() -> None:
    topics = SubscriptionTopics()
    topics.learn(created(1, "docs-for-a"))
    resolution = topics.resolve(topics.ids(), listing([1, 7, 9]))
    assert resolution.unknown == [7, 9]
    assert resolution.known == [Subscription("docs-for-a", "exact")]
    # A lookup's answer is learned like an event: the next listing needs none.
    topics.learn(created(7, "docs-for-g"))
    topics.learn(created(9, "other.topic"))
    assert topics.resolve(topics.ids(), listing([1, 7, 9])).unknown == []


def test_deleted_ids_are_forgotten() -> None:
    topics = SubscriptionTopics()
    topics.learn(created(1, "docs-for-a"))
    topics.forget(1)
    topics.forget(1)  # a repeated or unknown delete is harmless
    topics.forget("not-an-id")
    assert 1 not in topics
    assert topics.resolve(topics.ids(), listing([1])).unknown == [1]


def test_ids_no_longer_listed_are_forgotten_but_not_those_learned_during_the_listing() -> None:
    topics = SubscriptionTopics()
    topics.learn(created(1, "docs-for-a"))
    topics.learn(created(2, "docs-for-b"))
    before = topics.ids()
    # While the listing was on its way: 2 went (its on_delete is late), 3 came.
    topics.learn(created(3, "docs-for-c"))
    resolution = topics.resolve(before, listing([1]))
    assert resolution.known == [Subscription("docs-for-a", "exact")]
    assert 2 not in topics
    assert 3 in topics  # newer than the listing, not gone
    assert len(topics) == 2


def test_malformed_details_teach_nothing() -> None:
    topics = SubscriptionTopics()
    for details in (None, "docs-for-a", {"uri": "docs-for-a"}, {"id": 1}, created(1, "docs-for-a", "fuzzy")):
        assert topics.learn(details) is None
    assert len(topics) == 0
    assert parse_details({"id": 4, "uri": "docs-for-d"}) == (4, Subscription("docs-for-d", "exact"))


def test_listed_ids_takes_every_match_policy_and_ignores_junk() -> None:
    assert listed_ids({"exact": [1, 2], "prefix": [3], "wildcard": [4]}) == [1, 2, 3, 4]
    assert listed_ids({"exact": None, "prefix": ["x", 5]}) == [5]
    assert listed_ids(None) == []


def test_coverage_of_exact_prefix_and_wildcard_subscriptions() -> None:
    subs = [
        Subscription("docs-for-aa11", "exact"),
        Subscription("docs-for-b", "prefix"),
        Subscription("docs-for-cc", "wildcard"),  # no empty part: that one topic
        Subscription("docs-for-x..y", "wildcard"),  # spans parts: no sid topic
        Subscription("com.estrom.other", "exact"),
    ]
    assert coverage(subs) == ({"aa11", "cc"}, frozenset({"b"}))


def test_a_pattern_covering_every_sid_suspends_deactivation() -> None:
    assert coverage([Subscription("docs-for-a", "exact"), Subscription("docs-", "prefix")]) is None
    assert coverage([Subscription("docs-for-", "prefix")]) is None
    assert coverage([Subscription("", "wildcard")]) is None
    assert coverage([]) == (set(), frozenset())


def test_covers_follows_what_is_learned_and_forgotten() -> None:
    """What the publisher asks of the front node's map: does anyone there receive this sid?"""
    topics = SubscriptionTopics()
    assert not topics.covers("aaaa")
    topics.learn(created(1, "docs-for-aaaa"))
    topics.learn(created(2, "docs-for-bb", "prefix"))
    topics.learn(created(3, "other.topic"))
    assert topics.covers("aaaa")
    assert topics.covers("bbcd")
    assert not topics.covers("cccc")
    topics.learn(created(4, "docs-for-aaaa", "prefix"))  # another subscription covering the same sid
    topics.forget(1)
    assert topics.covers("aaaa")
    topics.forget(4)
    assert not topics.covers("aaaa")
    topics.learn(created(5, "docs-", "prefix"))  # every docs-for- topic
    assert topics.covers("cccc")
    topics.forget(5)
    topics.forget(2)
    topics.forget(3)
    assert not topics.covers("bbcd")


def test_learning_an_id_again_replaces_what_it_covered() -> None:
    topics = SubscriptionTopics()
    topics.learn(created(1, "docs-for-aaaa"))
    topics.learn(created(1, "docs-for-bbbb"))  # the same id in a new router run's map
    assert not topics.covers("aaaa")
    assert topics.covers("bbbb")
