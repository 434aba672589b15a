"""Queries as users make them: subscribed first, then registered over WAMP, the rest seeded.

Subscribing before registering means no sweep can deactivate a query the run
still needs; registering over WAMP for a bounded time and seeding the rest
keeps N = 10,000 within minutes (every registration refreshes the percolator index).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import DeferredSemaphore, gatherResults

from beater.store.schema import ACTIVE_FIELD
from bench.compare.runs import Bench
from bench.harness import log, process_trees
from bench.measure import rss_kib
from bench.receivers import HitLog
from bench.stored_queries import PERC_PREFIX, check_document_shape, write_query_documents
from bench.workload import QuerySet
from common.contract import topic_for
from devstack.wamp_client import on_reactor

REGISTER_IN_FLIGHT = 64


def subscribe(b: Bench, sids: list[str], hitlog: HitLog) -> list[Any]:
    """One WAMP subscription per sid, made before the query exists so no sweep ever deactivates it;
    at the sid's partition's router node, as a tailor subscribes."""

    async def run() -> list[Any]:
        sem = DeferredSemaphore(256)
        calls = [sem.run(b.wamp_for(s).session.subscribe, hitlog.handler(s), topic_for(s)) for s in sids]
        return await gatherResults(calls, consumeErrors=True)

    return on_reactor(run, timeout=600)


def unsubscribe(subscriptions: list[Any]) -> None:
    async def run() -> None:
        sem = DeferredSemaphore(256)
        await gatherResults([sem.run(s.unsubscribe) for s in subscriptions], consumeErrors=True)

    on_reactor(run, timeout=600)


def register(b: Bench, qs: QuerySet) -> None:
    """``com.estrom.register_query`` with many calls in flight for at most the registration budget;
    the rest written into the percolator index as registration writes them (``bench/stored_queries.py``)."""
    b.targets.add(qs.index)
    t0 = time.perf_counter()
    done = 0
    while done < len(qs.queries) and (done == 0 or time.perf_counter() - t0 < b.cfg.register_budget):
        wave = qs.queries[done : done + REGISTER_IN_FLIGHT * 4]

        async def call(wave: list[Any] = wave) -> list[str]:
            sem = DeferredSemaphore(REGISTER_IN_FLIGHT)
            calls = [sem.run(b.wamp.session.call, "com.estrom.register_query", qs.index, q) for q in wave]
            return await gatherResults(calls, consumeErrors=True)

        got = on_reactor(call, timeout=600)
        if got != qs.sids[done : done + len(wave)]:
            raise RuntimeError(
                f"register_query answered other sids than common.query.identity.sid_for: {got[:3]}"
            )
        done += len(wave)
    wamp_s = time.perf_counter() - t0
    check_document_shape(b.es, qs.index, qs.sids[0], qs.queries[0])
    seeded_s = seed(b, qs, done)
    rate = done / wamp_s
    # Memory with all N stored and subscribed: the router holds N subscriptions, the beater N sids.
    rss = {
        name: rss_kib(tree) for name, tree in process_trees(b.stack).items() if name in ("router", "beater")
    }
    b.registration.append(
        {"queries": len(qs.sids), "over_wamp": done, "wamp_per_s": rate, "seeded": len(qs.sids) - done}
        | {f"{name}_rss_kib": kib for name, kib in rss.items()}
    )
    log(
        f"N={len(qs.sids)}: {done} registered over WAMP ({REGISTER_IN_FLIGHT} in flight) at {rate:.1f}/s"
        + (
            f", {len(qs.sids) - done} more seeded with _bulk in {seeded_s:.1f}s"
            if done < len(qs.sids)
            else ""
        )
        + "; RSS "
        + ", ".join(f"{name} {kib / 1024:.0f} MiB" for name, kib in rss.items())
    )


def seed(b: Bench, qs: QuerySet, start: int, chunk: int = 2000) -> float:
    """The queries from ``start`` on written straight into the percolator index; returns the seconds."""
    t0 = time.perf_counter()
    rest = list(zip(qs.sids[start:], qs.queries[start:], strict=True))
    write_query_documents(b.es, qs.index, rest, chunk)
    return time.perf_counter() - t0


def count_active(b: Bench, index: str, active: bool) -> int:
    body = {"query": {"term": {ACTIVE_FIELD: active}}}
    return int(b.es.count(index=PERC_PREFIX + index, body=body)["count"])


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> bool:
    """Poll a condition read from the engine, bounded by ``timeout``."""
    deadline = time.perf_counter() + timeout
    while not done():
        if time.perf_counter() > deadline:
            log(f"!!! {what}: not reached within {timeout:.0f}s")
            return False
        time.sleep(0.5)
    return True
