"""The figures of one measured run, and what every section shares to measure it."""

from __future__ import annotations

import argparse
import uuid
from dataclasses import dataclass, field
from typing import Any

from bench.harness import log
from bench.measure import Probe, Usage, pct
from common.partitions import partition_of
from devstack.stack import Stack
from devstack.wamp_client import WampClient

ACTIVE_FEW = 100  # section 5: queries left subscribed
DRAIN_S = 30.0  # how long to wait for the hits still on their way once sending stopped


@dataclass
class Run:
    """One measured run of a section, as printed and as written to JSON."""

    section: str
    queries: int | None
    docs: int = 0
    seconds: float = 0.0
    docs_per_s: float = 0.0
    ceiling: float | None = None  # what docs_per_s (or events_per_s) is compared with
    ceiling_cpu_us: float | None = None  # engine CPU per doc of the engine ceiling
    events_per_s: float | None = None
    hits: int | None = None
    expected_hits: int | None = None
    latency_ms: dict[str, float | None] = field(default_factory=dict)  # POST to WAMP receipt
    tail_latency_ms: dict[str, float | None] = field(default_factory=dict)  # POST to tail receipt
    request_ms: dict[str, float | None] = field(default_factory=dict)
    cpu_us_per_doc: dict[str, float] = field(default_factory=dict)
    cpu_pct: dict[str, float] = field(default_factory=dict)
    delivery: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def stack_us_per_doc(self) -> float | None:
        """CPU of engine, router, beater and tailor per document (the client excluded)."""
        return sum(self.cpu_us_per_doc.values()) if self.cpu_us_per_doc else None

    @property
    def cpu_ratio(self) -> float | None:
        """Stack CPU per document over the engine ceiling's: robust to how busy the machine is."""
        us = self.stack_us_per_doc
        return us / self.ceiling_cpu_us if us is not None and self.ceiling_cpu_us else None

    @property
    def ratio(self) -> float | None:
        value = self.events_per_s if self.section == "router" else self.docs_per_s
        return value / self.ceiling if self.ceiling and value is not None else None


def percentiles(xs: list[float]) -> dict[str, float | None]:
    return {f"p{p}": pct(xs, p) for p in (50, 95, 99)}


def cpu_pct(usage: Usage) -> dict[str, float]:
    return {name: round(usage.cpu_pct(name)) for name in usage.cpu_s}


def find(runs: list[Run], section: str, queries: int | None) -> Run | None:
    return next((r for r in runs if r.section == section and r.queries == queries), None)


@dataclass
class Bench:
    """What the sections share: the stack, clients, data and settings."""

    cfg: argparse.Namespace
    stack: Stack
    #: the tailor's principal at each router node, in partition order (the first is the front)
    wamps: list[WampClient]
    es: Any
    probe: Probe
    base: list[str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    runs: list[Run] = field(default_factory=list)
    registration: list[dict[str, Any]] = field(default_factory=list)
    #: every target registered so far: the ones the beater knows (its percolate scope's ``known``)
    targets: set[str] = field(default_factory=set)
    next_batch: int = 0  # batch numbers are never reused: every POST is new documents

    @property
    def wamp(self) -> WampClient:
        """The front node's session: calls, and the router ceiling's publishes."""
        return self.wamps[0]

    def wamp_for(self, sid: str) -> WampClient:
        """The session at the sid's partition's node, where a tailor subscribes it."""
        return self.wamps[partition_of(sid, len(self.wamps))]

    def batches(self, count: int) -> int:
        first, self.next_batch = self.next_batch, self.next_batch + count
        return first

    def add(self, run: Run) -> Run:
        self.runs.append(run)
        ratio = f" = {run.ratio:.2f} x ceiling" if run.ratio is not None else ""
        lat = run.latency_ms.get("p99")
        log(
            f"{run.section} N={run.queries or '-'}: {run.docs_per_s or run.events_per_s or 0:.0f}/s{ratio}"
            + (f", p99 {lat:.0f} ms" if lat is not None else "")
            + (f", delivery {run.delivery}" if run.delivery else "")
        )
        return run
