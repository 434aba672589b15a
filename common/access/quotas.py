"""Quotas per caller: registrations and sid lookups per second, subscriptions, concurrent tails.

The key of a quota is a reader's name, or ``anonymous@<address>`` for
anonymous callers (``common/access/callers.py``): an anonymous authid is
per session, so a flood of sessions from one address would otherwise each
get a fresh allowance. ``0`` means unlimited.

Over a limit the caller gets :class:`QuotaExceeded`, naming the limit and its
value (WAMP ``com.estrom.error.quota_exceeded``, HTTP 429 with Retry-After);
everybody else is untouched.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from common.environment import ConfigError, integer, listed, real

#: ends every refusal of a quota's value
_UNLIMITED = " (0 for unlimited)"


class QuotaExceeded(Exception):
    """``limit`` (its setting's name) is at ``value``; retry after ``retry_after`` seconds."""

    def __init__(self, limit: str, value: float, key: str, retry_after: int = 1) -> None:
        self.limit = limit
        self.value = value
        self.key = key
        self.retry_after = max(1, retry_after)
        shown = int(value) if float(value).is_integer() else value
        super().__init__(f"quota exceeded: {limit} is {shown} (for {key}); retry in {self.retry_after} s")


@dataclass(frozen=True)
class QuotaLimits:
    """Every limit, as its ``ESTROM_QUOTA_*`` setting names it; 0 is unlimited."""

    #: active subscriptions to ``docs-for-*`` per identity (anonymous: per address)
    subscriptions: int = 300
    #: and over all identities (a router's total)
    subscriptions_total: int = 0
    #: query registrations per second per identity, sustained ...
    registrations_per_second: float = 20.0
    #: ... and in a burst
    registrations_burst: int = 100
    #: sid lookups (``describe_query``, tails' ``s=``) per second per identity that reach the
    #: query store, sustained ...
    describes_per_second: float = 20.0
    #: ... and in a burst
    describes_burst: int = 100
    #: concurrent tails (and counts) per identity, per tailor process
    tails: int = 20
    #: concurrent tails (and counts) over all identities, per tailor process
    tails_total: int = 1000
    #: addresses (or networks) of reverse proxies whose X-Forwarded-For is believed
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> QuotaLimits:
        """The ``ESTROM_QUOTA_*`` and ``ESTROM_TRUSTED_PROXIES`` variables (``Settings.quotas``; the
        router reads them here, without the rest of the settings); ConfigError for a bad value."""
        d = cls()
        proxies = listed(env, "ESTROM_TRUSTED_PROXIES")
        for p in proxies:
            try:
                ipaddress.ip_network(p, strict=False)
            except ValueError:
                raise ConfigError(f"ESTROM_TRUSTED_PROXIES: {p!r} is not an address or network") from None

        def count(name: str, default: int) -> int:
            return integer(env, name, default, 0, _UNLIMITED)

        def rate(name: str, default: float) -> float:
            return real(env, name, default, 0.0, _UNLIMITED)

        return cls(
            subscriptions=count("ESTROM_QUOTA_SUBSCRIPTIONS", d.subscriptions),
            subscriptions_total=count("ESTROM_QUOTA_SUBSCRIPTIONS_TOTAL", d.subscriptions_total),
            registrations_per_second=rate(
                "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND", d.registrations_per_second
            ),
            registrations_burst=count("ESTROM_QUOTA_REGISTRATIONS_BURST", d.registrations_burst),
            describes_per_second=rate("ESTROM_QUOTA_DESCRIBES_PER_SECOND", d.describes_per_second),
            describes_burst=count("ESTROM_QUOTA_DESCRIBES_BURST", d.describes_burst),
            tails=count("ESTROM_QUOTA_TAILS", d.tails),
            tails_total=count("ESTROM_QUOTA_TAILS_TOTAL", d.tails_total),
            trusted_proxies=proxies,
        )


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take`` says how long until one is there."""

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when taken, else the seconds until one would be there."""
        self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


@dataclass
class Refusals:
    """Refusals per limit (and of identities or targets, as ``not_authorized``), for /metrics."""

    by_limit: Counter[str] = field(default_factory=Counter)

    def count(self, exc: QuotaExceeded) -> None:
        self.by_limit[exc.limit] += 1

    def count_reason(self, reason: str) -> None:
        """A refusal that is not over a limit (``not_authorized``)."""
        self.by_limit[reason] += 1


class RateLimit:
    """A token bucket per quota key; idle full buckets are forgotten so keys cannot pile up."""

    def __init__(
        self, limit: str, rate: float, burst: int, clock: Callable[[], float], refusals: Refusals
    ) -> None:
        self.limit = limit
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.refusals = refusals
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str) -> None:
        """One action by ``key``, or QuotaExceeded naming the limit (counted in ``refusals``)."""
        rate = self.rate
        if rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > 10_000:
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
            bucket = self._buckets[key] = TokenBucket(rate, self.burst, now)
        wait = bucket.take(now)
        if wait:
            exc = QuotaExceeded(self.limit, rate, key, math.ceil(wait) if wait != math.inf else 60)
            self.refusals.count(exc)
            raise exc


class RegistrationRate(RateLimit):
    """Query registrations per identity (``ESTROM_QUOTA_REGISTRATIONS_*``)."""

    LIMIT = "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND"

    def __init__(self, limits: QuotaLimits, clock: Callable[[], float], refusals: Refusals) -> None:
        super().__init__(
            self.LIMIT, limits.registrations_per_second, limits.registrations_burst, clock, refusals
        )


class DescribeRate(RateLimit):
    """Sid lookups per identity that reach the query store (``ESTROM_QUOTA_DESCRIBES_*``)."""

    LIMIT = "ESTROM_QUOTA_DESCRIBES_PER_SECOND"

    def __init__(self, limits: QuotaLimits, clock: Callable[[], float], refusals: Refusals) -> None:
        super().__init__(self.LIMIT, limits.describes_per_second, limits.describes_burst, clock, refusals)


class ConcurrentCounter:
    """Held slots per key and in total (subscriptions, tails); ``release`` gives one back."""

    def __init__(
        self, per_key: int, total: int, per_key_name: str, total_name: str, refusals: Refusals
    ) -> None:
        self.per_key = per_key
        self.total = total
        self.per_key_name = per_key_name
        self.total_name = total_name
        self.refusals = refusals
        self.held: Counter[str] = Counter()

    @classmethod
    def subscriptions(cls, limits: QuotaLimits, refusals: Refusals) -> ConcurrentCounter:
        """Subscriptions to ``docs-for-*`` (the router's)."""
        return cls(
            limits.subscriptions,
            limits.subscriptions_total,
            "ESTROM_QUOTA_SUBSCRIPTIONS",
            "ESTROM_QUOTA_SUBSCRIPTIONS_TOTAL",
            refusals,
        )

    @classmethod
    def tails(cls, limits: QuotaLimits, refusals: Refusals) -> ConcurrentCounter:
        """Concurrent tails and counts (a tailor's)."""
        return cls(
            limits.tails, limits.tails_total, "ESTROM_QUOTA_TAILS", "ESTROM_QUOTA_TAILS_TOTAL", refusals
        )

    def check_room(self, key: str) -> None:
        """QuotaExceeded (counted) when ``key`` already holds its per-key limit; nothing is held."""
        if self.per_key and self.held[key] >= self.per_key:
            exc = QuotaExceeded(self.per_key_name, self.per_key, key)
            self.refusals.count(exc)
            raise exc

    def acquire(self, key: str) -> None:
        """Hold one slot for ``key``, or QuotaExceeded naming the limit that is full."""
        if self.per_key and self.held[key] >= self.per_key:
            exc = QuotaExceeded(self.per_key_name, self.per_key, key)
        elif self.total and sum(self.held.values()) >= self.total:
            exc = QuotaExceeded(self.total_name, self.total, key)
        else:
            self.held[key] += 1
            return
        self.refusals.count(exc)
        raise exc

    def release(self, key: str, n: int = 1) -> None:
        self.held[key] -= n
        if self.held[key] <= 0:
            del self.held[key]

    def top(self, n: int = 5) -> list[tuple[str, int]]:
        """The largest users, for metrics."""
        return self.held.most_common(n)


@dataclass(frozen=True)
class CallerRates:
    """A process's rate limits for its callers (registrations, sid lookups) and the refusals they count."""

    refusals: Refusals
    registrations: RegistrationRate
    describes: DescribeRate

    @classmethod
    def build(cls, limits: QuotaLimits, clock: Callable[[], float]) -> CallerRates:
        refusals = Refusals()
        return cls(refusals, RegistrationRate(limits, clock, refusals), DescribeRate(limits, clock, refusals))
