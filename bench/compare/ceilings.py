"""Sections 1 and 2: what the engine and the router do on their own, the ceilings estrom is held to."""

from __future__ import annotations

import json
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from autobahn.wamp.types import PublishOptions
from twisted.internet.defer import ensureDeferred, gatherResults

from beater.matching.search import scope_filter
from beater.store.schema import SHARED_SUFFIX
from beater.store.targets import RECENT_SLACK_MS
from bench.compare.runs import DRAIN_S, Bench, Run, cpu_pct, percentiles
from bench.receivers import HitLog
from bench.stored_queries import PERC_PREFIX
from bench.workload import QuerySet, Stream
from common.contract import topic_for
from devstack.wamp_client import on_reactor


def engine_ceiling(b: Bench, qs: QuerySet, stream: Stream, budget: float) -> Run:
    """The beater's percolate request, straight to the engine, C in flight, for ``budget`` seconds.

    On the shared percolator index, scoped as the beater scopes it (``beater.matching.search.scope_filter``):
    the covering target's queries, and the recent ones of targets it does not know."""
    pindex = PERC_PREFIX + SHARED_SUFFIX + "0"
    scope = scope_filter((qs.index,), int(time.time() * 1000) - RECENT_SLACK_MS, tuple(sorted(b.targets)))
    deadline = time.perf_counter() + budget
    first = b.batches(0)

    def work(k: int) -> tuple[int, int, float] | None:
        if time.perf_counter() > deadline:
            return None
        body = stream.percolate_body(k, scope)
        t0 = time.perf_counter()
        hits = b.es.search(index=pindex, body=body)["hits"]["hits"]
        return k, sum(len(h["fields"]["_percolator_document_slot"]) for h in hits), time.perf_counter() - t0

    b.probe.start()
    start = time.perf_counter()
    limit = int(budget * 100_000 / stream.size) + b.cfg.senders  # far more than can be done
    with ThreadPoolExecutor(b.cfg.senders) as pool:
        done = [r for r in pool.map(work, range(first, first + limit)) if r is not None]
    seconds = time.perf_counter() - start
    usage = b.probe.usage()
    expected = sum(stream.expected([k for k, _, _ in done]).values())
    matches = sum(m for _, m, _ in done)
    docs = len(done) * stream.size
    return Run(
        "engine",
        len(qs.sids),
        docs=docs,
        seconds=seconds,
        docs_per_s=docs / seconds,
        hits=matches,
        expected_hits=expected,
        request_ms=percentiles([t for _, _, t in done]),
        cpu_us_per_doc={"engine": 1e6 * usage.cpu_s["engine"] / max(docs, 1)},
        cpu_pct=cpu_pct(usage),
        delivery={"ok": matches == expected},
    )


def bracketed(before: Run, after: Run) -> Run:
    """One ceiling from a measurement just before and one just after the run it is the ceiling of:
    on a shared machine the load drifts, and bracketing halves what drift does to the ratio."""
    docs, seconds = before.docs + after.docs, before.seconds + after.seconds
    engine_us = sum(r.cpu_us_per_doc["engine"] * r.docs for r in (before, after)) / max(docs, 1)
    return Run(
        "engine",
        before.queries,
        docs=docs,
        seconds=seconds,
        docs_per_s=docs / seconds,
        hits=(before.hits or 0) + (after.hits or 0),
        expected_hits=(before.expected_hits or 0) + (after.expected_hits or 0),
        request_ms={"before_p50": before.request_ms["p50"], "after_p50": after.request_ms["p50"]},
        cpu_us_per_doc={"engine": engine_us},
        cpu_pct={
            k: round((v * before.seconds + after.cpu_pct.get(k, 0) * after.seconds) / seconds)
            for k, v in before.cpu_pct.items()
        },
        delivery={"ok": before.delivery["ok"] and after.delivery["ok"]},
        note=f"before {before.docs_per_s:.0f}, after {after.docs_per_s:.0f} docs/s",
    )


def router_ceiling(b: Bench) -> Run:
    """Acknowledged publishes (the beater's principal) to one anonymous subscriber, 64 in flight."""
    # Serialized as the beater's publishes are (common/wamp.py); received as
    # the end-to-end WAMP subscribers receive (an anonymous JSON session).
    publisher = b.stack.client("beater", serializers=("cbor",))
    topic = topic_for(secrets.token_hex(8))  # a sid-shaped topic: browsers may subscribe to nothing else
    received = HitLog()
    sub = on_reactor(lambda: b.wamp.session.subscribe(received.handler("ceiling"), topic))
    hit = {"_index": "router-ceiling", "_source": json.loads(b.base[0] + ',"slot":"q00000","sent_at":0}')}
    options = PublishOptions(acknowledge=True)

    async def publish_for(seconds: float) -> tuple[int, float, float]:
        start = time.time()
        sent = 0

        async def worker() -> None:
            nonlocal sent
            while time.time() - start < seconds:
                source = dict(hit["_source"], sent_at=time.time())
                sent += 1
                await publisher.session.publish(topic, dict(hit, _source=source), options=options)

        await gatherResults([ensureDeferred(worker()) for _ in range(64)], consumeErrors=True)
        return sent, start, time.time()

    try:
        b.probe.start()
        sent, start, end = on_reactor(publish_for, b.cfg.router_s, timeout=b.cfg.router_s + 120)
        arrived = on_reactor(received.wait_complete, Counter(ceiling=sent), DRAIN_S, timeout=DRAIN_S + 10)
        usage = b.probe.usage()
        got = on_reactor(lambda: (received.total, received.last, list(received.latencies)))
    finally:
        on_reactor(sub.unsubscribe)
        publisher.close()
    total, last, latencies = got
    seconds = max(end, last) - start
    return b.add(
        Run(
            "router",
            None,
            seconds=seconds,
            events_per_s=total / seconds,
            hits=total,
            expected_hits=sent,
            latency_ms=percentiles(latencies),
            cpu_pct=cpu_pct(usage),
            delivery={"ok": arrived and total == sent, "published": sent, "received": total},
            note="1 hit per event, acknowledged, 64 in flight",
        )
    )
