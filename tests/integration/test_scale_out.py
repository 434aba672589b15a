"""Scale-out: two beaters and two tailors on one router and one engine.

Queries are registered through either beater (the procedures are shared,
round-robin), documents ingested through either, tails opened on either
tailor (two on one sid to cover a shared subscription): every hit reaches
every tail exactly once. Tails use ``limit=`` so they end on their own and
their complete documents are compared.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.metrics_page import metric
from devstack.stack import Stack
from tests.real_stack import EngineHandle, ServiceHandle, StartService
from tests.tailor.helpers import send
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

QUERIES = {
    "kind:a": lambda doc: doc["kind"] == "a",
    "kind:b": lambda doc: doc["kind"] == "b",
    "kind:a OR kind:b": lambda doc: True,
    "tag:hot": lambda doc: doc["tag"] == "hot",
}
DOCS = [{"kind": "ab"[i % 2], "tag": "hot" if i % 3 == 0 else "cold", "n": i} for i in range(16)]


@pytest.fixture
def scaled(stack: Stack, engine: EngineHandle, start_beater: StartService, index: str) -> Iterator[dict]:
    """Own router (so only these two beaters serve the procedures), two beaters, two tailors."""
    router = stack.start_router(f"router-{index}")
    tailors: list[ServiceHandle] = []
    try:
        beaters = [start_beater(router_url=router.service_url) for _ in range(2)]
        for _ in range(2):
            tailors.append(stack.start_tailor(engine_url=engine.url, router_url=router.service_url))
        yield {"beaters": beaters, "tailors": tailors}
    finally:
        for tailor in tailors:
            tailor.stop()
        router.stop()


def test_every_hit_reaches_every_subscriber_exactly_once(scaled, index):
    beaters, tailors = scaled["beaters"], scaled["tailors"]
    tails: list[tuple[str, Tail]] = []
    try:
        for query, matches in QUERIES.items():
            expected = sum(1 for d in DOCS if matches(d))
            for tailor in tailors:
                tails.append((query, Tail(tailor.url, {"i": index, "q": query, "limit": expected})))
        # A second client of one sid on one tailor: the shared subscription fans out to both.
        tails.append(("kind:a", Tail(tailors[1].url, {"i": index, "q": "kind:a", "limit": 8})))
        assert all(tail.status == 200 for _, tail in tails)
        # The tailors registered the queries; round-robin spread the calls over both beaters.
        wait_until(
            lambda: all(metric(b.url, "estrom_beater_queries_registered_total") > 0 for b in beaters),
            what="both beaters registered queries",
        )

        for i, doc in enumerate(DOCS):
            send(beaters[i % 2].url, index, [doc])

        for query, tail in tails:
            got = [hit["_source"] for hit in tail.document()["hits"]]
            want = [d for d in DOCS if QUERIES[query](d)]
            assert sorted(got, key=lambda d: d["n"]) == want, f"{query} on {tail.conn.port}"
            assert len(got) == len({d["n"] for d in got}), f"{query}: a hit arrived twice"
    finally:
        for _, tail in tails:
            tail.close()
