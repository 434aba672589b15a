"""Wiring: settings → engine, router session, pipeline, HTTP and WAMP faces."""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from beater.http_api import BeaterAPI
from beater.lifecycle import QueryLifecycle
from beater.percolate import Percolator
from beater.pipeline import IngestPipeline
from beater.publish import Publisher
from beater.rpc import QueryProcedures
from beater.store import QueryStore
from common.config import Settings
from common.engine import Engine
from common.metrics import Metrics
from common.service import listen_and_join
from common.wamp import SessionHolder

log = Logger()


def build_metrics(pipeline_ref: list[IngestPipeline]) -> Metrics:
    m = Metrics("estrom_beater_")
    m.counter("ingest_requests_total", "Ingest requests by outcome.")
    m.counter("ingest_documents_total", "Ingested documents by outcome (accepted, rejected).")
    m.counter("published_hits_total", "Document-to-subscription deliveries acknowledged by the router.")
    m.counter("queries_registered_total", "Successful register_query calls.")
    m.counter(
        "query_matches_total",
        "Hits published per subscription since this beater started (what `estrom queries` shows).",
    )
    m.counter("lifecycle_sweeps_total", "Reconciliations of stored queries with the router's subscriptions.")
    m.counter("queries_deactivated_total", "Queries no longer percolated: nobody subscribed.")
    m.counter("queries_collected_total", "Queries deleted after the grace period without subscribers.")
    m.gauge("queue_documents", "Documents waiting for or in percolation.", lambda: pipeline_ref[0].queued)
    m.gauge("batches_total", "Percolated batches.", lambda: pipeline_ref[0].stats["batches"])
    return m


class Beater:
    def __init__(self, settings: Settings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.engine = Engine.from_settings(settings, reactor)
        self.store = QueryStore(self.engine, settings.query_index_prefix, settings.query_limits())
        self.percolator = Percolator(
            self.engine,
            settings.query_index_prefix,
            settings.percolate_mode,
            settings.percolate_documents_min,
            targets=self.store.targets.percolator_indices_for,
        )
        pipeline_ref: list[IngestPipeline] = []
        self.metrics = build_metrics(pipeline_ref)
        self.metrics.gauge(
            "read_targets",
            "Registered read targets other than single names (patterns, lists) this beater matches.",
            lambda: len(self.store.targets),
        )
        self.procedures = QueryProcedures(self.store, self.metrics)
        self.wamp = SessionHolder(
            settings.router_url,
            settings.realm,
            on_join=self._attach,
            authid=settings.beater_authid,
            secret=settings.beater_secret,
        )
        self.lifecycle = QueryLifecycle(
            self.store,
            self.wamp,
            reactor,
            self.metrics,
            grace=settings.query_grace,
            interval=settings.query_sweep_interval,
        )
        self.publisher = Publisher(self.wamp, reactor, settings.publish_timeout, self.metrics)
        self.pipeline = IngestPipeline(
            self.percolator.percolate,
            self.publisher.publish,
            clock=reactor,
            batch_size=settings.batch_size,
            linger=settings.batch_linger_ms / 1000.0,
            max_queued=settings.queue_max_docs,
            concurrency=settings.engine_concurrency,
        )
        pipeline_ref.append(self.pipeline)
        self.api = BeaterAPI(settings, self.pipeline, self.engine, self.wamp, self.metrics)
        self.port: IListeningPort | None = None

    async def _attach(self, session: Any) -> None:
        await self.procedures.attach(session)
        await self.lifecycle.attach(session)

    async def start(self) -> None:
        """Listen, join the router, check the engine, start sweeping; print the ready line."""
        self.port = await listen_and_join(
            "beater",
            self.reactor,
            self.settings.beater_listen,
            self.api.site(),
            self.wamp,
            self.engine,
            drain=self._drain,
        )
        self.lifecycle.start()

    async def _drain(self, port: IListeningPort) -> None:
        """SIGTERM: take no new requests, finish (or 503) those in flight; then we leave the router."""
        self.lifecycle.stop()
        await self.api.drain(port, self.settings.shutdown_grace, self.reactor)
