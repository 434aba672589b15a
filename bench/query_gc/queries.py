"""The queries of the run: registered over WAMP, or written straight into the percolator index.

Also the subscriptions: the live queries' (counted), and the prefix one that
holds every sweep until the experiment releases it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from autobahn.wamp.types import SubscribeOptions
from twisted.internet.defer import DeferredSemaphore, gatherResults

from bench.harness import log
from bench.stored_queries import PERC_PREFIX, Query, write_query_documents
from common.contract import TOPIC_PREFIX, topic_for
from common.query.identity import canonicalize, normalize_query, sid_for
from devstack.wamp_client import WampClient, on_reactor

#: A prefix subscription covering every sid: it holds every sweep (step 3 of the package docstring).
HOLD_TOPIC = TOPIC_PREFIX


class HitCounter:
    """Counts the hits the live subscriber receives (called on the reactor thread)."""

    def __init__(self) -> None:
        self.hits = 0

    def __call__(self, *hits: Any, **_kwargs: Any) -> None:
        self.hits += len(hits)


def distinct_queries(index: str, queries: Iterator[Query], count: int, exclude: set[str]) -> dict[str, Query]:
    """The next ``count`` queries with a sid not in ``exclude`` (equivalent queries share a sid)."""
    found: dict[str, Query] = {}
    while len(found) < count:
        query = next(queries)
        sid = sid_for(index, canonicalize(normalize_query(query)))
        if sid not in exclude and sid not in found:
            found[sid] = query
    return found


async def _register_batch(session: Any, index: str, queries: list[Query], concurrency: int) -> list[str]:
    sem = DeferredSemaphore(concurrency)
    calls = [sem.run(session.call, "com.estrom.register_query", index, q) for q in queries]
    return await gatherResults(calls, consumeErrors=True)


def register_queries(
    client: WampClient,
    index: str,
    queries: dict[str, Query],
    label: str,
    batch: int = 250,
    concurrency: int = 16,
) -> float:
    """``com.estrom.register_query`` for each, concurrently in batches; returns registrations per second."""
    items = list(queries.items())
    t0 = time.perf_counter()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        got = on_reactor(
            _register_batch, client.session, index, [q for _, q in chunk], concurrency, timeout=600
        )
        if got != [sid for sid, _ in chunk]:
            raise RuntimeError(
                f"register_query answered sids that differ from common.query.identity.sid_for: {got[:3]}"
            )
        done = start + len(chunk)
        log(f"  {label}: {done}/{len(items)} registered over WAMP, {done / (time.perf_counter() - t0):.1f}/s")
    return len(items) / (time.perf_counter() - t0)


def seed_queries(es: Any, index: str, queries: dict[str, Query], chunk: int = 1000) -> float:
    """Write the queries' documents with ``_bulk``, as registration would have; returns docs per second."""
    pindex, items = PERC_PREFIX + index, list(queries.items())
    t0 = time.perf_counter()
    write_query_documents(
        es, index, items, chunk, lambda n: log(f"  abandoned: {n}/{len(items)} written to {pindex}")
    )
    return len(items) / (time.perf_counter() - t0)


def subscribe_all(client: WampClient, sids: list[str], handler: HitCounter) -> None:
    on_reactor(
        lambda: gatherResults([client.session.subscribe(handler, topic_for(sid)) for sid in sids]),
        timeout=120,
    )


def hold_sweeps(client: WampClient) -> Any:
    """Subscribe to ``HOLD_TOPIC`` by prefix; returns the subscription (unsubscribe to release)."""
    options = SubscribeOptions(match="prefix")
    return on_reactor(lambda: client.session.subscribe(lambda *_a, **_k: None, HOLD_TOPIC, options=options))
