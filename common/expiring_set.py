"""A bounded memory with expiry: what beater and tailor keep of sids found unknown a moment ago."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable


class ExpiringSet:
    """Keys remembered for ``ttl`` seconds, at most ``size`` of them (the oldest go first).

    What beater and tailor know about unknown sids: a lookup found none a
    moment ago, so asking the engine again now would cost the same search
    for the same answer. ``discard`` forgets one at once (the sid was just
    registered). ``ttl`` or ``size`` 0 remembers nothing.
    """

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._until)

    def __contains__(self, key: object) -> bool:
        until = self._until.get(key)  # type: ignore[call-overload]
        if until is None:
            return False
        if until <= self.clock():
            del self._until[key]  # type: ignore[arg-type]
            return False
        return True

    def add(self, key: str) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        now = self.clock()
        self._until.pop(key, None)
        self._until[key] = now + self.ttl
        # Insertion order is expiry order (one ttl for all): drop the expired, then the oldest.
        while self._until:
            oldest, until = next(iter(self._until.items()))
            if until > now and len(self._until) <= self.size:
                break
            del self._until[oldest]

    def discard(self, key: str) -> None:
        self._until.pop(key, None)
