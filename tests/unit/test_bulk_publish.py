"""Stored but not published: counted by cause, logged once per cause, never silent."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from beater.app import build_metrics
from beater.bulk.publish import StoredPublisher, request_pipeline
from beater.bulk.stored_sources import IndexPipelines
from beater.http.drain import Drain
from beater.ingest.pipeline import IngestPipeline
from common.router_tier import RouterTier
from common.wamp import SessionHolder


async def _never(*_args: Any) -> tuple[int, bytes]:
    raise AssertionError("no engine request expected")


def test_each_cause_is_counted_every_time_and_logged_once() -> None:
    clock = Clock()
    pipeline = IngestPipeline(
        _never, _never, clock=clock, batch_size=1, linger=0.0, max_queued=1, concurrency=1
    )
    metrics = build_metrics()
    publisher = StoredPublisher(
        pipeline,
        RouterTier([SessionHolder("ws://127.0.0.1:9/ws", "estrom")]),
        metrics,
        clock,
        IndexPipelines(_never, clock, ttl=5.0),
        _never,
        Drain(clock),
    )
    seen: list[LogEvent] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        assert publisher.unpublished(3, "no_router") == 3
        assert publisher.unpublished(2, "no_router") == 2
        assert publisher.unpublished(1, "unpaired", "item 0 does not answer") == 1
        assert publisher.unpublished(0, "queue_full") == 0
    finally:
        globalLogPublisher.removeObserver(seen.append)
    warned = [e for e in seen if e.get("log_format") == "bulk.unpublished" and e["log_level"].name == "warn"]
    assert [(e["cause"], e["documents"]) for e in warned] == [("no_router", 3), ("unpaired", 1)]
    assert metrics.value("bulk_unpublished_total", cause="no_router") == 5
    assert metrics.value("bulk_unpublished_total", cause="unpaired") == 1
    assert metrics.value("bulk_documents_total", outcome="unpublished") == 6


def test_the_request_pipeline_is_read_from_the_uri() -> None:
    assert request_pipeline(b"/_bulk?refresh=true&pipeline=p1") == "p1"
    assert request_pipeline(b"/logs/_bulk?pipeline=_none") == "_none"
    assert request_pipeline(b"/_bulk") is None
