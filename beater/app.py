"""Wiring: settings → engine, router session, pipeline, HTTP and WAMP faces."""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from beater.bulk.api import BulkAPI
from beater.bulk.publish import StoredPublisher
from beater.bulk.stored_sources import IndexPipelines
from beater.http.drain import Drain
from beater.http.forwarder import EngineForwarder
from beater.ingest.api import BeaterAPI
from beater.ingest.pipeline import IngestPipeline
from beater.matching.percolate import PercolateResult, Percolator
from beater.publishing.publisher import Publisher
from beater.queries.lifecycle import QueryLifecycle
from beater.queries.rpc import QueryProcedures
from beater.sites import bulk_site, own_site, shared_site
from beater.store import QueryStore
from beater.writers.aliases import WriteAliases
from beater.writers.gate import WriterGate
from common.access.errors import ReadersError
from common.config import Settings
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.metrics import Metrics
from common.router_tier import RouterTier
from common.service import listen_and_join

log = Logger()


def build_metrics() -> Metrics:
    """The beater's metrics; what reads an object's state (gauges) is declared once it exists."""
    m = Metrics("estrom_beater_")
    m.counter("ingest_requests_total", "Ingest requests by outcome.", labels=("outcome",))
    m.counter(
        "ingest_documents_total", "Ingested documents by outcome (accepted, rejected).", labels=("outcome",)
    )
    m.counter("published_hits_total", "Document-to-subscription deliveries acknowledged by the router.")
    m.counter("queries_registered_total", "Successful register_query calls.")
    m.counter(
        "query_matches_total",
        "Hits published per subscription since this beater started (what `estrom queries` shows).",
        labels=("sid",),
    )
    m.counter("lifecycle_sweeps_total", "Reconciliations of stored queries with the router's subscriptions.")
    m.counter("queries_deactivated_total", "Queries no longer percolated: nobody subscribed.")
    m.counter("queries_collected_total", "Queries deleted after the grace period without subscribers.")
    m.counter(
        "lifecycle_lookups_total",
        "wamp.subscription.get calls by sweeps, by outcome: found, gone (unsubscribed meanwhile), failed.",
        labels=("outcome",),
    )
    m.histogram(
        "ingest_request_seconds",
        "Ingest requests, from the whole body received to the answer, by outcome.",
        labels=("outcome",),
    )
    m.counter(
        "bulk_requests_total", "Bulk requests, by the engine's status (or estrom's).", labels=("status",)
    )
    m.counter(
        "bulk_documents_total",
        "Documents of bulk requests: stored by the engine, then published, unpublished "
        "(router down or not acknowledging) or not_percolated.",
        labels=("outcome",),
    )
    m.counter(
        "bulk_unpaired_total", "Bulk answers whose items could not be paired with the request's actions."
    )
    m.counter(
        "bulk_unpublished_total",
        "Documents of bulk requests stored but not published, by cause (beater/bulk/publish.py CAUSES).",
        labels=("cause",),
    )
    m.counter("bulk_read_back_total", "Stored documents read back (after an ingest pipeline, or an update).")
    m.histogram("bulk_read_back_seconds", "Time to read back a chunk of stored documents (_mget).")
    m.counter(
        "passthrough_requests_total", "Shipper start-up requests passed to the engine.", labels=("status",)
    )
    m.counter(
        "write_refusals_total",
        "Writes refused: unauthorized (401), bulk_item (one item's target, 403), passthrough, ingest.",
        labels=("reason",),
    )
    m.histogram("bulk_request_seconds", "Bulk requests, from the whole body received to the answer.")
    m.histogram("percolate_request_seconds", "Percolation of one batch by the engine (all its requests).")
    m.histogram(
        "publish_ack_seconds", "From handing a batch's events to the router to its last acknowledgement."
    )
    return m


def watch_pipeline(metrics: Metrics, pipeline: IngestPipeline) -> None:
    """The pipeline's gauges: what waits for percolation, and how many batches went."""
    metrics.gauge("queue_documents", "Documents waiting for or in percolation.", lambda: pipeline.queued)
    metrics.gauge("batches_total", "Percolated batches.", lambda: pipeline.stats["batches"])


class Beater:
    def __init__(self, settings: Settings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        self.engine = Engine.from_settings(settings, reactor)
        self.metrics = build_metrics()
        self.store = QueryStore(
            self.engine,
            settings.query_index_prefix,
            settings.query_limits(),
            shards=settings.query_index_shards,
            replicas=settings.query_index_replicas,
            metrics=self.metrics,
        )
        targets = self.store.targets
        self.metrics.gauge(
            "read_targets",
            "Registered read targets other than single names (patterns, lists) this beater matches.",
            lambda: len(targets),
        )
        self.percolator = Percolator(
            self.engine, targets, settings.percolate_mode, settings.percolate_documents_min
        )
        self.procedures = QueryProcedures(self.store, self.metrics, settings)
        self.wamp = RouterTier.connect(
            settings.router_urls,
            settings.realm,
            self._attach,
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
        self.publisher = Publisher(
            self.wamp, reactor, settings.publish_timeout, self.metrics, self.lifecycle.subscribed_at
        )
        self.pipeline = IngestPipeline(
            self._percolate,
            self.publisher.publish,
            clock=reactor,
            batch_size=settings.batch_size,
            linger=settings.batch_linger_ms / 1000.0,
            max_queued=settings.queue_max_docs,
            concurrency=settings.engine_concurrency,
        )
        watch_pipeline(self.metrics, self.pipeline)
        #: SIGTERM's drain, one for both HTTP faces
        self.drain = Drain(reactor)
        forwarder = EngineForwarder(reactor, settings.bulk_engine_url(), settings.bulk_timeout)
        # Where a bulk write through an alias lands: asked within the engine timeout, not a bulk's.
        lookups = EngineForwarder(reactor, settings.bulk_engine_url(), settings.engine_timeout)
        try:
            aliases = WriteAliases(lookups.get, reactor)
            self.gate = WriterGate.build(
                settings, self.metrics, os.environ, aliases, percolated_as=self.store.targets.concrete
            )
        except ReadersError as exc:
            print(f"beater: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        self.api = BeaterAPI(
            settings,
            self.pipeline,
            self.engine,
            self.wamp,
            self.metrics,
            self.gate,
            self.drain,
            reactor,
            targets.first_write,
        )
        stored = StoredPublisher(
            self.pipeline,
            self.wamp,
            self.metrics,
            reactor,
            IndexPipelines(lookups.get, reactor, settings.bulk_pipeline_ttl),
            lookups.post,
            self.drain,
            refresh_targets=self.store.refresh_targets,
        )
        self.bulk = BulkAPI(forwarder, stored, self.metrics, self.gate, self.drain)
        self.port: IListeningPort | None = None
        self.bulk_port: IListeningPort | None = None

    async def _percolate(self, index: str, docs: list[dict[str, Any]]) -> PercolateResult:
        """The pipeline's percolate step, timed for ``percolate_request_seconds``."""
        with self.metrics.timer("percolate_request_seconds"):
            return await self.percolator.percolate(index, docs)

    async def _attach(self, node: int, session: Any) -> None:
        await self.procedures.attach(session, front=node == 0)
        await self.lifecycle.attach(node, session)

    async def start(self) -> None:
        """Take in an older layout's queries; listen, join the router, check the engine, start sweeping;
        print the ready line."""
        try:
            await self.store.migrate_layout()
        except (EngineUnavailable, EngineRejected) as exc:
            log.warn("store.migration_deferred", error=str(exc))  # the first sweep runs it
        if self.settings.bulk_listen:
            # The bulk API on its own address: only it is served there.
            site = bulk_site(self.settings, self.bulk)
            self.bulk_port = await serverFromString(self.reactor, self.settings.bulk_listen).listen(site)
            address = self.bulk_port.getHost()
            # A TCP endpoint: an IPv4Address or IPv6Address, which IAddress does not declare.
            log.info("beater.bulk_listening", host=address.host, port=address.port)  # type: ignore[union-attr]
            beater_site = own_site(self.settings, self.api)
        else:
            beater_site = shared_site(self.settings, self.api, self.bulk)
        self.port = await listen_and_join(
            "beater",
            self.reactor,
            self.settings.beater_listen,
            beater_site,
            self.wamp,
            self.engine,
            drain=self._drain,
        )
        self.lifecycle.start()

    async def _drain(self, port: IListeningPort) -> None:
        """SIGTERM: take no new requests, finish (or 503) those in flight; then we leave the router."""
        self.lifecycle.stop()
        if self.bulk_port is not None:
            stopping = self.bulk_port.stopListening()
            if stopping is not None:
                await stopping
        await self.drain.drain(port, self.settings.shutdown_grace)
