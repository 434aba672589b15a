"""One load process of the router tier benchmark: a publisher, or a subscriber timing arrivals.

``python -m bench.router_tier.child pub|sub --urls U1,U2 --sids FILE ...``.
With several URLs (one per router worker) a sid's events go to, and are
subscribed at, its partition's worker (``common/partitions.py``); one URL
(a proxy) takes every sid. A subscriber prints ``ready`` once subscribed,
and at the end one JSON line: events and hits that arrived in the measured
window, and their delivery latency (arrival less the first hit's send time).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from autobahn.twisted.component import Component
from autobahn.wamp.types import PublishOptions
from twisted.internet import defer, reactor, task

from bench.measure import pct
from common.contract import topic_for
from common.partitions import partition_of


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=("pub", "sub"))
    p.add_argument("--urls", required=True)
    p.add_argument("--sids", required=True, help="a JSON file: the list of sids")
    p.add_argument("--serializer", default="cbor")
    p.add_argument("--start", type=float, default=0.0, help="pub: epoch second to begin")
    p.add_argument("--seconds", type=float, default=10.0, help="pub: how long to publish")
    p.add_argument(
        "--inflight", type=int, default=32, help="pub: acknowledged publishes in flight per session"
    )
    p.add_argument("--hits", type=int, default=1, help="pub: hits per event")
    p.add_argument("--window", default="0,0", help="sub: epoch seconds FROM,TO that are measured")
    p.add_argument("--until", type=float, default=0.0, help="sub: epoch second to stop")
    return p.parse_args(argv)


def _groups(sids: list[str], k: int) -> list[list[str]]:
    groups: list[list[str]] = [[] for _ in range(k)]
    for sid in sids:
        groups[partition_of(sid, k)].append(sid)
    return groups


def _sessions(urls: list[str], serializer: str) -> defer.Deferred[list[Any]]:
    """A session per URL; as a principal (WAMP-CRA) when ``ESTROM_BENCH_AUTHID`` and its secret are set:
    estrom's own router nodes let only the services publish and subscribe at a partition's node."""
    authid, secret = os.environ.get("ESTROM_BENCH_AUTHID"), os.environ.get("ESTROM_BENCH_SECRET")
    authentication = {"wampcra": {"authid": authid, "secret": secret}} if authid and secret else None
    joined: list[defer.Deferred[Any]] = []
    for url in urls:
        d: defer.Deferred[Any] = defer.Deferred()
        comp = Component(
            transports=[{"url": url, "serializers": [serializer]}],
            realm="estrom",
            authentication=authentication,
        )
        comp.on("join", lambda session, _details, d=d: d.callback(session) if not d.called else None)
        comp.start(reactor)
        joined.append(d)
    return defer.gatherResults(joined)


async def publish(cfg: argparse.Namespace, sids: list[str]) -> None:
    urls = cfg.urls.split(",")
    sessions = await _sessions(urls, cfg.serializer)
    groups = _groups(sids, len(urls))
    sent = 0
    options = PublishOptions(acknowledge=True)
    body = {"message": "x" * 200, "level": "info", "host": "bench"}
    await task.deferLater(reactor, max(0.0, cfg.start - time.time()), lambda: None)
    stop = time.time() + cfg.seconds

    async def worker(session: Any, group: list[str], offset: int) -> None:
        nonlocal sent
        n = offset
        while time.time() < stop:
            sid = group[n % len(group)]
            n += cfg.inflight
            hits = [
                {"_index": "bench", "_source": dict(body, sent_at=time.time(), n=i)} for i in range(cfg.hits)
            ]
            await session.publish(topic_for(sid), hits, options=options)
            sent += 1

    await defer.gatherResults(
        [
            defer.ensureDeferred(worker(session, group, i))
            for session, group in zip(sessions, groups, strict=True)
            if group
            for i in range(cfg.inflight)
        ]
    )
    print(json.dumps({"sent": sent}), flush=True)


async def subscribe(cfg: argparse.Namespace, sids: list[str]) -> None:
    urls = cfg.urls.split(",")
    sessions = await _sessions(urls, cfg.serializer)
    groups = _groups(sids, len(urls))  # one URL (a proxy): one group, every sid
    w0, w1 = (float(x) for x in cfg.window.split(","))
    arrivals = {"events": 0, "hits": 0, "total": 0}
    latencies: list[float] = []

    def on_event(hits: list[dict[str, Any]]) -> None:
        now = time.time()
        arrivals["total"] += 1
        if w0 <= now <= w1:
            arrivals["events"] += 1
            arrivals["hits"] += len(hits)
            latencies.append(now - hits[0]["_source"]["sent_at"])

    await defer.gatherResults(
        [
            session.subscribe(on_event, topic_for(sid))
            for session, group in zip(sessions, groups, strict=True)
            for sid in group
        ]
    )
    print("ready", flush=True)
    await task.deferLater(reactor, max(0.0, cfg.until - time.time()), lambda: None)
    print(json.dumps(dict(arrivals, p50=pct(latencies, 50), p99=pct(latencies, 99))), flush=True)


def main(argv: list[str]) -> None:
    cfg = _parse(argv)
    with open(cfg.sids) as f:
        sids = json.load(f)
    run = publish if cfg.role == "pub" else subscribe

    async def go() -> None:
        try:
            await run(cfg, sids)
        finally:
            reactor.stop()

    reactor.callWhenRunning(lambda: defer.ensureDeferred(go()))
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
