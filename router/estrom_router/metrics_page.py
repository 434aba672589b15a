"""The router's ``GET /metrics``: the readers gate's refusals and largest users, in Prometheus text.

The router has no HTTP port of its own code (crossbar owns 8080), but its
web transport can serve a Twisted resource on a path (router/config.json,
``"metrics": {"type": "resource", ...}``). crossbar builds that resource in
the router worker process, the process where the readers gate (an embedded
component) lives, so the page reads the gate's state directly: no WAMP
round trip, nothing published. Same exposition as the beater's and the
tailor's (common/metrics.py, one registry of its own, the standard
``process_*`` metrics of the router worker), prefix ``estrom_router_``.

- ``reader_refusals_total{reason}``: refusals by the gate, by the limit's
  setting (``ESTROM_QUOTA_SUBSCRIPTIONS``, ...) or ``not_authorized``;
- ``reader_top_subscriptions{key}``: subscriptions held by the largest users
  (a reader's name, or ``anonymous@<address>``), the ``TOP`` largest only, so
  that the page stays small however many addresses come;
- ``reader_subscriptions``, ``reader_sessions``, ``reader_targets_cached``;
- ``authorize_seconds{action}``: how long the gate takes to decide.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.web.resource import Resource
from twisted.web.server import Request

from common.contract import UNAVAILABLE
from common.metrics import CONTENT_TYPE, Metrics

PREFIX = "estrom_router_"
#: the largest users shown
TOP = 10
#: the reason of refusals that are not over a limit (identity or target)
NOT_AUTHORIZED = "not_authorized"

#: the readers gate of this router worker, once it started (one per worker)
_gates: list[Any] = []


def serve(gate: Any) -> None:
    """Make ``gate`` (a ReadersGate) the one whose metrics ``/metrics`` shows."""
    _gates[:] = [gate]


class _ReadersCollector:
    """Reads the gate's refusal counts and held subscriptions at each scrape."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    def collect(self) -> Iterator[Metric]:
        refusals = CounterMetricFamily(
            PREFIX + "reader_refusals",
            "Refusals by the readers gate (register, describe, subscribe), by limit or not_authorized.",
            labels=["reason"],
        )
        for reason, n in sorted(self.gate.rates.refusals.by_limit.items()):
            refusals.add_metric([reason], n)
        yield refusals
        top = GaugeMetricFamily(
            PREFIX + "reader_top_subscriptions",
            f"Subscriptions to docs-for-* held by the {TOP} largest users (reader, or anonymous@address).",
            labels=["key"],
        )
        for key, n in self.gate.held.counter.top(TOP):
            top.add_metric([key], n)
        yield top


def build_metrics(gate: Any) -> Metrics:
    """The router's metrics, reading ``gate``'s live state."""
    m = Metrics(PREFIX)
    m.gauge(
        "reader_subscriptions",
        "Subscriptions to docs-for-* held by reader and anonymous sessions, over all of them.",
        lambda: sum(gate.held.counter.held.values()),
    )
    m.gauge(
        "reader_sessions", "Reader and anonymous sessions the gate knows.", lambda: len(gate.held.sessions)
    )
    m.gauge("reader_targets_cached", "Sids whose read target the gate remembers.", lambda: len(gate.targets))
    m.histogram(
        "authorize_seconds",
        "How long the readers gate takes to decide (call, subscribe; admit: the beater's question).",
        labels=("action",),
    )
    m.registry.register(_ReadersCollector(gate))
    return m


class MetricsResource(Resource):
    """``GET /metrics`` on the router's web transport; 503 until the gate has started."""

    isLeaf = True

    def __init__(self, extra: Any = None) -> None:
        super().__init__()

    def render_GET(self, request: Request) -> bytes:
        if not _gates:
            request.setResponseCode(UNAVAILABLE.status)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(
                {"error": UNAVAILABLE.code, "reason": "the readers gate has not started yet"}
            ).encode()
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return bytes(_gates[0].metrics.render())
