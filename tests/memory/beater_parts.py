"""The beater's HTTP parts, wired as ``beater.app.Beater`` wires them, on memory reactors.

No process, no engine, no router: the pipeline's percolate step is the
test's, publishing is a no-op, the router session a placeholder (or none),
and the engine the bulk API forwards to is an address nothing answers at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet.defer import succeed

from beater.app import build_metrics, watch_pipeline
from beater.bulk.api import BulkAPI
from beater.bulk.publish import StoredPublisher
from beater.bulk.stored_sources import IndexPipelines
from beater.http.drain import Drain
from beater.http.forwarder import EngineForwarder
from beater.ingest.api import BeaterAPI
from beater.ingest.pipeline import IngestPipeline
from beater.matching.percolate import PercolateResult
from beater.writers.gate import WriterGate
from common.config import Settings
from common.engine import Engine
from common.router_tier import RouterTier
from common.wamp import SessionHolder

Percolate = Callable[[str, list[dict[str, Any]]], Awaitable[PercolateResult]]


class JoinedPlaceholder:
    """Stands for a joined session: only "is there a session" is asked here."""

    def is_attached(self) -> bool:
        return True


class BeaterParts:
    """Ingest and the bulk API with one drain; ``reactor`` runs them, ``engine_reactor`` the engine's side."""

    def __init__(
        self,
        settings: Settings,
        reactor: Any,
        percolate: Percolate,
        *,
        engine_reactor: Any = None,
        joined: bool = False,
    ) -> None:
        self.settings = settings
        self.pipeline = IngestPipeline(
            percolate,
            lambda grouped: succeed(0),
            clock=reactor,
            batch_size=100,
            linger=0.0,
            max_queued=settings.queue_max_docs,
            concurrency=1,
        )
        self.engine = Engine("http://127.0.0.1:9", timeout=1, concurrency=1, reactor=reactor)
        holder = SessionHolder("ws://127.0.0.1:9/ws", "estrom")
        if joined:
            holder.session = JoinedPlaceholder()  # type: ignore[assignment]
        self.wamp = RouterTier([holder])
        self.metrics = build_metrics()
        watch_pipeline(self.metrics, self.pipeline)
        self.gate = WriterGate.build(settings, self.metrics, {})
        self.drain = Drain(reactor)
        self.api = BeaterAPI(
            settings, self.pipeline, self.engine, self.wamp, self.metrics, self.gate, self.drain
        )
        forwarder = EngineForwarder(engine_reactor or reactor, "http://127.0.0.1:9200", 30.0)
        stored = StoredPublisher(
            self.pipeline,
            self.wamp,
            self.metrics,
            reactor,
            IndexPipelines(forwarder.get, reactor, settings.bulk_pipeline_ttl),
            forwarder.post,
            self.drain,
        )
        self.bulk = BulkAPI(forwarder, stored, self.metrics, self.gate, self.drain)
