"""The timeline: one row per window, its phase read from the engine's counts and the beater's metrics.

Never inferred from the clock: what the lifecycle did is what the counts show.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from beater.store.schema import ACTIVE_FIELD
from bench.harness import log
from bench.measure import pct
from bench.query_gc.load import Load
from bench.query_gc.queries import HitCounter
from bench.stored_queries import PERC_PREFIX
from devstack.metrics_page import samples
from devstack.sender import Attempt
from devstack.stack import Stack

LIFECYCLE_METRICS = ("lifecycle_sweeps_total", "queries_deactivated_total", "queries_collected_total")


@dataclass
class State:
    """The engine's count of stored and active queries, and the beater's lifecycle counters."""

    stored: int
    active: int
    sweeps: int
    deactivated: int
    collected: int


@dataclass
class Window:
    elapsed: float  # seconds since the first window of the run, at the window's end
    phase: str
    state: State
    seconds: float
    done: list[Attempt]
    refused: int
    live_hits: int

    @property
    def docs(self) -> int:
        return sum(d.accepted for d in self.done)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds

    @property
    def published_per_doc(self) -> float | None:
        return sum(d.published for d in self.done) / self.docs if self.docs else None

    @property
    def live_per_doc(self) -> float | None:
        return self.live_hits / self.docs if self.docs else None

    def latency_ms(self, p: float) -> float | None:
        return pct([d.seconds for d in self.done], p)


def phase_of(prev: State, cur: State, live: int, total: int) -> str:
    """What the lifecycle did during a window, from the counts and the counters only."""
    if cur.stored < prev.stored or cur.collected > prev.collected or live < cur.stored < total:
        return "collecting"
    if cur.active < prev.active or cur.deactivated > prev.deactivated:
        return "deactivating"
    if cur.stored <= live:
        return "collected"
    if cur.active <= live:
        return "all-deactivated"
    if cur.active == cur.stored:
        return "all-active"
    return "partly-active"


class Timeline:
    """Cuts the run into windows of ``step`` seconds and reads the state at each window's end."""

    def __init__(self, stack: Stack, es: Any, load: Load, counter: HitCounter, step: float) -> None:
        self.stack, self.es, self.load, self.counter, self.step = stack, es, load, counter, step
        self.origin = time.monotonic()
        self.rows: list[tuple[str, Window]] = []  # (segment, window)
        self._mark = self.origin
        self._hits = 0

    def state(self, index: str) -> State:
        pindex = PERC_PREFIX + index
        stored = self.es.count(index=pindex)["count"]
        active = self.es.count(index=pindex, body={"query": {"term": {ACTIVE_FIELD: True}}})["count"]
        m = samples(self.stack.beater.url, prefix="estrom_beater_")
        return State(stored, active, *(int(m.get(name, 0)) for name in LIFECYCLE_METRICS))

    def restart(self) -> None:
        """Begin a new window now (after a pause in the load)."""
        self._mark = time.monotonic()
        self._hits = self.counter.hits

    def window(self, segment: str, index: str, phase: Callable[[State], str]) -> Window:
        """Wait for the end of the current window; record and print it."""
        time.sleep(max(0.0, self._mark + self.step - time.monotonic()))
        end = time.monotonic()
        state = self.state(index)
        hits = self.counter.hits
        row = Window(
            end - self.origin,
            phase(state),
            state,
            end - self._mark,
            *self.load.between(self._mark, end),
            hits - self._hits,
        )
        self._mark, self._hits = end, hits
        self.rows.append((segment, row))
        log(f"{segment:<9} {format_row(row)}")
        return row


TIMELINE_HEAD = (
    f"{'t s':>6} {'phase':<16} {'stored':>6} {'active':>6} {'docs/s':>6} {'reqs':>4} {'503':>3} "
    f"{'p50 ms':>6} {'p99 ms':>6} {'pub/doc':>7} {'live/doc':>8} {'sweeps':>6} {'deact':>6} {'coll':>6}"
)


def num(value: float | None, width: int, fmt: str) -> str:
    """A figure right-aligned in ``width`` columns, ``-`` when there is none."""
    return f"{'-' if value is None else format(value, fmt):>{width}}"


def format_row(w: Window) -> str:
    s = w.state
    return (
        f"{w.elapsed:>6.1f} {w.phase:<16} {s.stored:>6} {s.active:>6} {w.docs_per_s:>6.0f} {len(w.done):>4} {w.refused:>3} "
        f"{num(w.latency_ms(50), 6, '.0f')} {num(w.latency_ms(99), 6, '.0f')} "
        f"{num(w.published_per_doc, 7, '.2f')} {num(w.live_per_doc, 8, '.3f')} "
        f"{s.sweeps:>6} {s.deactivated:>6} {s.collected:>6}"
    )
