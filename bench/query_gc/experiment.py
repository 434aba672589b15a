"""The steps of the run: the live and abandoned queries, the baseline, the experiment itself."""

from __future__ import annotations

import argparse
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.harness import log
from bench.query_gc.load import Load
from bench.query_gc.log_data import SEED, LogData
from bench.query_gc.queries import (
    HitCounter,
    distinct_queries,
    register_queries,
    seed_queries,
    subscribe_all,
)
from bench.query_gc.timeline import State, Timeline, phase_of
from bench.stored_queries import check_document_shape
from devstack.stack import Stack
from devstack.wamp_client import WampClient, on_reactor


@dataclass
class Bench:
    stack: Stack
    client: WampClient
    es: Any
    data: LogData
    load: Load
    timeline: Timeline
    counter: HitCounter
    cfg: argparse.Namespace
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    notes: list[str] = field(default_factory=list)

    def note(self, text: str) -> None:
        self.notes.append(text)
        log(text)

    def live_queries(self, index: str) -> set[str]:
        """Register the live queries over WAMP and subscribe to them at once, as a client does."""
        queries = distinct_queries(index, self.data.queries(SEED + 1), self.cfg.live, set())
        register_queries(self.client, index, queries, "live")
        subscribe_all(self.client, list(queries), self.counter)
        return set(queries)

    def abandoned_queries(self, index: str, live: set[str]) -> None:
        """The first ``rpc_abandoned`` over WAMP, the rest written straight into the engine."""
        cfg = self.cfg
        queries = distinct_queries(index, self.data.queries(SEED + 2), cfg.abandoned, live)
        items = list(queries.items())
        over_wamp = dict(items[: cfg.rpc_abandoned])
        rate = register_queries(
            self.client, index, over_wamp, "abandoned", cfg.register_batch, cfg.register_concurrency
        )
        self.note(f"{len(over_wamp)} abandoned queries registered over WAMP: {rate:.1f}/s")
        if len(over_wamp) < len(items):
            check_document_shape(self.es, index, *items[0])
            rate = seed_queries(self.es, index, dict(items[cfg.rpc_abandoned :]))
            self.note(f"{len(items) - len(over_wamp)} more written into the percolator index: {rate:.0f}/s")


def run_baseline(b: Bench, index: str, segment: str, seconds: float) -> None:
    """The load against ``index`` (only the live queries) for ``seconds``."""
    b.load.start(index)
    b.timeline.restart()
    for _ in range(max(1, round(seconds / b.cfg.step))):
        b.timeline.window(segment, index, lambda _s: "baseline")
    b.load.stop()


def warm_up(b: Bench, index: str) -> None:
    """Let the engine's JIT and caches settle: at least ``warmup`` seconds and ``warmup_requests``."""
    t0 = time.monotonic()
    b.load.start(index)
    while time.monotonic() - t0 < b.cfg.warmup or b.load.requests < b.cfg.warmup_requests:
        time.sleep(0.2)
    b.load.stop()
    log(f"warm-up: {b.load.requests} requests in {time.monotonic() - t0:.0f}s")


def run_experiment(b: Bench, index: str, hold: Any) -> None:
    """All active under load, then release the hold and follow deactivation and collection."""
    b.load.start(index)
    b.timeline.restart()
    prev = b.timeline.state(index)

    def phase(cur: State) -> str:
        nonlocal prev
        name, prev = phase_of(prev, cur, b.cfg.live, b.cfg.live + b.cfg.abandoned), cur
        return name

    for _ in range(round(b.cfg.active_seconds / b.cfg.step)):
        b.timeline.window("gc", index, phase)
    on_reactor(hold.unsubscribe)
    released = time.perf_counter()
    b.note("hold released: from here on the abandoned queries have no subscriber the lifecycle would spare")
    collected_for = 0.0
    deadline = released + 2 * b.cfg.interval + b.cfg.grace + b.cfg.timeout
    while collected_for < b.cfg.after_seconds and time.perf_counter() < deadline:
        row = b.timeline.window("gc", index, phase)
        collected_for = collected_for + row.seconds if row.phase == "collected" else 0.0
    if collected_for < b.cfg.after_seconds:
        b.note(f"!!! not collected within {time.perf_counter() - released:.0f}s of the release")
    b.load.stop()
    check_counters(b, b.timeline.rows[-1][1].state)


def check_counters(b: Bench, end: State) -> None:
    """The beater's lifecycle counters against what the engine shows was done."""
    for name, counted in (("deactivated", end.deactivated), ("collected", end.collected)):
        if counted != b.cfg.abandoned:
            b.note(
                f"!!! the beater's queries_{name}_total says {counted}, "
                f"the engine's counts say {b.cfg.abandoned} queries were {name}"
            )
