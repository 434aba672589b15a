"""Unknown sids remembered briefly (beater and tailor), sid lookups rationed per caller."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from beater.queries.sid_cache import SidCache
from common.access.quotas import DescribeRate, QuotaExceeded, QuotaLimits, Refusals
from common.config import Settings
from common.expiring_set import ExpiringSet
from common.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_expiring_set_forgets_after_the_ttl_and_keeps_at_most_size():
    clock = Clock()
    unknown = ExpiringSet(5.0, 3, clock)
    unknown.add("a")
    assert "a" in unknown
    clock.now = 5.0
    assert "a" not in unknown
    for key in "bcde":
        unknown.add(key)
    assert len(unknown) == 3
    assert "b" not in unknown  # the oldest went first
    unknown.discard("c")
    assert "c" not in unknown
    assert ExpiringSet(0, 10, clock).add("x") is None
    assert len(ExpiringSet(0, 10, clock)) == 0


def test_describe_rate_names_its_limit():
    clock, refusals = Clock(), Refusals()
    rate = DescribeRate(QuotaLimits(describes_per_second=1.0, describes_burst=2), clock, refusals)
    rate.take("anonymous@127.0.0.1")
    rate.take("anonymous@127.0.0.1")
    with pytest.raises(QuotaExceeded) as exc:
        rate.take("anonymous@127.0.0.1")
    assert exc.value.limit == "ESTROM_QUOTA_DESCRIBES_PER_SECOND"
    rate.take("ops")
    assert refusals.by_limit == {"ESTROM_QUOTA_DESCRIBES_PER_SECOND": 1}


def test_describe_limits_from_env():
    limits = QuotaLimits.from_env(
        {"ESTROM_QUOTA_DESCRIBES_PER_SECOND": "0", "ESTROM_QUOTA_DESCRIBES_BURST": "7"}
    )
    assert (limits.describes_per_second, limits.describes_burst) == (0.0, 7)
    with pytest.raises(ValueError, match="ESTROM_QUOTA_DESCRIBES_BURST"):
        QuotaLimits.from_env({"ESTROM_QUOTA_DESCRIBES_BURST": "-1"})


class Store:
    """A query store whose describes wait until the test answers them."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Deferred[Any]]] = []
        self.known: dict[str, dict[str, Any]] = {}

    async def describe(self, sid: str) -> dict[str, Any] | None:
        d: Deferred[Any] = Deferred()
        self.asked.append((sid, d))
        await d
        return self.known.get(sid)

    def answer(self) -> None:
        asked, self.asked = self.asked, []
        for _sid, d in asked:
            d.callback(None)


def cache(clock: Clock, ttl: float = 5.0) -> tuple[SidCache, Store, Metrics]:
    store, metrics = Store(), Metrics("t_", process=False)
    return (
        SidCache(store, metrics, Settings(unknown_sid_ttl=ttl, unknown_sid_cache=100), clock),
        store,
        metrics,
    )


def outcome(d: Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not answered"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def describe(c: SidCache, sid: str, admit: Any = None) -> Deferred[Any]:
    return Deferred.fromCoroutine(c.describe(sid, admit))


def test_an_unknown_sid_is_searched_once_per_ttl_and_concurrent_asks_share_the_search():
    clock = Clock()
    c, store, metrics = cache(clock)
    waiting = [describe(c, "0123456789abcdef") for _ in range(50)]
    assert len(store.asked) == 1
    store.answer()
    assert [outcome(d) for d in waiting] == [None] * 50
    for _ in range(1000):
        assert outcome(describe(c, "0123456789abcdef")) is None
    assert store.asked == []
    assert metrics.value("sid_lookups_total", outcome="unknown") == 1
    assert metrics.value("sid_lookups_total", outcome="shared") == 49
    assert metrics.value("sid_lookups_total", outcome="remembered") == 1000
    clock.now = 5.0
    describe(c, "0123456789abcdef")
    assert len(store.asked) == 1


def test_registering_forgets_an_unknown_sid_even_while_it_is_searched():
    clock = Clock()
    c, store, _ = cache(clock)
    d = describe(c, "aaaaaaaaaaaaaaaa")
    store.answer()
    assert outcome(d) is None
    store.known["aaaaaaaaaaaaaaaa"] = {"sid": "aaaaaaaaaaaaaaaa", "index": "l", "query": "x"}
    c.registered("aaaaaaaaaaaaaaaa")
    d = describe(c, "aaaaaaaaaaaaaaaa")
    store.answer()
    assert outcome(d)["index"] == "l"

    # A search that started before the registration and found nothing is not remembered.
    d = describe(c, "bbbbbbbbbbbbbbbb")
    c.registered("bbbbbbbbbbbbbbbb")
    store.answer()
    assert outcome(d) is None
    describe(c, "bbbbbbbbbbbbbbbb")
    assert len(store.asked) == 1


def test_the_caller_is_admitted_before_a_search_only():
    clock = Clock()
    c, store, _ = cache(clock)
    admitted: list[str] = []

    async def admit() -> None:
        admitted.append("x")

    async def refuse() -> None:
        raise RuntimeError("quota")

    d = describe(c, "cccccccccccccccc", admit)
    store.answer()
    assert outcome(d) is None
    assert admitted == ["x"]
    assert outcome(describe(c, "cccccccccccccccc", refuse)) is None  # from memory: nothing to admit
    with pytest.raises(RuntimeError, match="quota"):
        outcome(describe(c, "dddddddddddddddd", refuse))
    assert store.asked == []


def test_a_failed_search_fails_every_sharer_and_is_not_remembered():
    clock = Clock()
    c, store, _ = cache(clock)
    first, second = describe(c, "eeeeeeeeeeeeeeee"), describe(c, "eeeeeeeeeeeeeeee")
    ((_, d),) = store.asked
    store.asked = []
    d.errback(Failure(ConnectionError("engine down")))
    for waiter in (first, second):
        with pytest.raises(ConnectionError):
            outcome(waiter)
    describe(c, "eeeeeeeeeeeeeeee")
    assert len(store.asked) == 1
