"""Quotas: token bucket, held counters, addresses behind proxies (pure functions)."""

from __future__ import annotations

import pytest

from common.access.callers import client_address, peer_host, quota_key
from common.access.quotas import (
    ConcurrentCounter,
    QuotaExceeded,
    QuotaLimits,
    Refusals,
    RegistrationRate,
    TokenBucket,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_a_burst_then_the_rate():
    b = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [b.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert b.take(0.0) == pytest.approx(0.5)
    assert b.take(0.5) == 0.0
    assert b.take(0.5) > 0


def test_registration_rate_per_key_names_the_limit():
    clock, refusals = Clock(), Refusals()
    rate = RegistrationRate(QuotaLimits(registrations_per_second=1.0, registrations_burst=2), clock, refusals)
    rate.take("anonymous@127.0.0.1")
    rate.take("anonymous@127.0.0.1")
    with pytest.raises(QuotaExceeded) as exc:
        rate.take("anonymous@127.0.0.1")
    assert exc.value.limit == "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"
    assert "is 1" in str(exc.value)
    assert exc.value.retry_after == 1
    rate.take("anonymous@127.0.0.2")  # another address is not held
    clock.now = 1.0
    rate.take("anonymous@127.0.0.1")
    assert refusals.by_limit == {"ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": 1}


def test_zero_means_unlimited():
    rate = RegistrationRate(QuotaLimits(registrations_per_second=0), Clock(), Refusals())
    for _ in range(1000):
        rate.take("k")
    c = ConcurrentCounter(0, 0, "a", "b", Refusals())
    for _ in range(1000):
        c.acquire("k")


def test_counter_per_key_and_total():
    refusals = Refusals()
    c = ConcurrentCounter(2, 3, "ESTROM_QUOTA_TAILS", "ESTROM_QUOTA_TAILS_TOTAL", refusals)
    c.acquire("a")
    c.acquire("a")
    with pytest.raises(QuotaExceeded, match="ESTROM_QUOTA_TAILS is 2"):
        c.acquire("a")
    c.acquire("b")
    with pytest.raises(QuotaExceeded, match="ESTROM_QUOTA_TAILS_TOTAL is 3"):
        c.acquire("c")
    c.release("a")
    c.acquire("c")
    assert c.top(1) == [("a", 1)] or c.top(1)[0][1] == 1
    assert refusals.by_limit == {"ESTROM_QUOTA_TAILS": 1, "ESTROM_QUOTA_TAILS_TOTAL": 1}


def test_limits_from_env():
    limits = QuotaLimits.from_env({"ESTROM_QUOTA_TAILS": "0", "ESTROM_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert limits.tails == 0
    assert limits.trusted_proxies == ("10.0.0.0/8", "::1")
    with pytest.raises(ValueError, match="ESTROM_QUOTA_SUBSCRIPTIONS must be an integer"):
        QuotaLimits.from_env({"ESTROM_QUOTA_SUBSCRIPTIONS": "many"})
    with pytest.raises(ValueError, match=">= 0"):
        QuotaLimits.from_env({"ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": "-1"})
    with pytest.raises(ValueError, match="not an address"):
        QuotaLimits.from_env({"ESTROM_TRUSTED_PROXIES": "proxy.local"})


def test_forwarded_for_only_from_trusted_proxies():
    assert client_address("10.0.0.5", "203.0.113.9", ["10.0.0.0/8"]) == "203.0.113.9"
    assert client_address("198.51.100.1", "203.0.113.9", ["10.0.0.0/8"]) == "198.51.100.1"
    # The left-most entry is the client's say; the right-most untrusted hop is the truth.
    assert client_address("10.0.0.5", "1.2.3.4, 203.0.113.9, 10.0.0.7", ["10.0.0.0/8"]) == "203.0.113.9"
    assert client_address("10.0.0.5", None, ["10.0.0.0/8"]) == "10.0.0.5"


def test_keys_and_peers():
    assert quota_key("anonymous", "127.0.0.2") == "anonymous@127.0.0.2"
    assert quota_key("ops", "127.0.0.2") == "ops"
    assert peer_host("tcp4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_host("tcp6:[::1]:5000") == "::1"
    assert peer_host("unix") == "unix"
