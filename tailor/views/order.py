"""``delay=``: hits held a while, then released in the order of a field's value.

Pure (no clock, no I/O: the view passes the time), so every release rule is
unit tested.

- **Order values** are compared as the engine sorts them ascending: a date
  string (ISO-8601, as ``@timestamp`` is written) and a number (epoch
  milliseconds, or any number) both as numbers, so the two mix; any other
  string after every number, by its text; an array by its smallest value.
  ``order_by`` is a dotted path, read as the engine reads it
  (``{"a": {"b": 1}}`` or ``{"a.b": 1}``).
- **Release.** Each hit is held at most ``delay`` seconds from its arrival.
  When a hit's time is up, it is released together with every held hit whose
  value is not greater, smallest first (equal values in arrival order): the
  stream stays in order, and a hit leaves early only to keep it so.
- **Late hits.** A hit arriving with a value below one already released
  cannot be put in its place: it is released at once, marked late. One
  equal to the last released goes at once too, in order.
- **Hits without a value** (the field missing, null, or an object) have no
  place in the order: they keep their arrival order among themselves, are
  released when their own time is up, and are never late.
- **Bound.** Past ``max_bytes`` held, the smallest values are released at
  once, in order (marked early, for the metric), instead of dropping hits.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, NamedTuple, TypeVar

from tailor.counts.counting import field_values

T = TypeVar("T")

#: (rank, number, text): numbers and dates rank 0, other strings 1.
OrderKey = tuple[int, float, str]


def order_key(source: Any, field: str) -> OrderKey | None:
    """The value ``source`` is ordered by at ``field`` (the smallest of an array); None without one."""
    keys = [_key(value) for value in field_values(source, field)]
    return min(keys) if keys else None


def _key(text: str) -> OrderKey:
    """One value, as ``field_values`` spells it (numbers as JSON, strings as they are)."""
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return (0, number, "")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return (1, 0.0, text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the engine reads a date without a zone as UTC
    return (0, moment.timestamp() * 1000, "")


class Released(NamedTuple, Generic[T]):
    """A hit let go: ``late`` if one with a greater value was released before it, ``early`` if
    released before its time to keep the buffer under its bound."""

    item: T
    late: bool = False
    early: bool = False


@dataclass(slots=True)
class _Mark:
    """Where a held hit's time is up, in arrival order; the hit itself sits in the heap."""

    key: OrderKey
    deadline: float
    released: bool = False


class OrderBuffer(Generic[T]):
    """The hits one view holds for ``delay`` seconds, ordered by their values."""

    def __init__(self, delay: float, max_bytes: int) -> None:
        self.delay = delay
        self.max_bytes = max_bytes
        #: (value, arrival, mark, hit, size): the held hits with a value, smallest first
        self._heap: list[tuple[OrderKey, int, _Mark, T, int]] = []
        #: the same hits' deadlines in arrival order (released ones pruned as they surface)
        self._marks: deque[_Mark] = deque()
        #: (deadline, hit, size) of the hits without a value, in arrival order
        self._keyless: deque[tuple[float, T, int]] = deque()
        self._arrivals = itertools.count()
        #: the greatest value released so far
        self.last: OrderKey | None = None
        self.held = 0
        self.held_bytes = 0

    def add(self, item: T, key: OrderKey | None, now: float, size: int) -> list[Released[T]]:
        """Hold ``item`` (its value ``key``, its encoded ``size``); what must go at once."""
        if key is not None and self.last is not None and key <= self.last:
            return [Released(item, late=key < self.last)]
        deadline = now + self.delay
        if key is None:
            self._keyless.append((deadline, item, size))
        else:
            mark = _Mark(key, deadline)
            heapq.heappush(self._heap, (key, next(self._arrivals), mark, item, size))
            self._marks.append(mark)
        self.held += 1
        self.held_bytes += size
        out: list[Released[T]] = []
        while self.held_bytes > self.max_bytes and self.held:
            out.append(self._pop(early=True) if self._heap else self._pop_keyless(early=True))
        return out

    def due(self, now: float) -> list[Released[T]]:
        """What is released at ``now``: each hit whose time is up, with every smaller one held."""
        upto: OrderKey | None = None
        marks = self._marks
        while marks and (marks[0].released or marks[0].deadline <= now):
            mark = marks.popleft()
            if not mark.released and (upto is None or mark.key > upto):
                upto = mark.key
        out: list[Released[T]] = []
        while upto is not None and self._heap and self._heap[0][0] <= upto:
            out.append(self._pop())
        while self._keyless and self._keyless[0][0] <= now:
            out.append(self._pop_keyless())
        if len(marks) > 2 * self.held + 16:  # released marks behind a held one: drop them now and then
            self._marks = deque(mark for mark in marks if not mark.released)
        return out

    def drain(self) -> list[Released[T]]:
        """Everything held, in order (the hits before a gap go before its notice)."""
        out = [self._pop() for _ in range(len(self._heap))]
        out += [self._pop_keyless() for _ in range(len(self._keyless))]
        self._marks.clear()
        return out

    def next_due(self) -> float | None:
        """When the next hit's time is up (None: nothing held)."""
        marks = self._marks
        while marks and marks[0].released:
            marks.popleft()
        times = [marks[0].deadline] if marks else []
        if self._keyless:
            times.append(self._keyless[0][0])
        return min(times) if times else None

    def clear(self) -> None:
        self._heap.clear()
        self._marks.clear()
        self._keyless.clear()
        self.held = self.held_bytes = 0

    def _pop(self, early: bool = False) -> Released[T]:
        key, _, mark, item, size = heapq.heappop(self._heap)
        mark.released = True
        self.last = key  # the heap gives values in order, none below one released before
        self.held -= 1
        self.held_bytes -= size
        return Released(item, early=early)

    def _pop_keyless(self, early: bool = False) -> Released[T]:
        _, item, size = self._keyless.popleft()
        self.held -= 1
        self.held_bytes -= size
        return Released(item, early=early)
