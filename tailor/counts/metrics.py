"""Per-sid count series for ``/metrics``, with a bound on how many.

A team may chart a query's rate in its own dashboards; a label per sid is
safe only while the number of sids is bounded. Series exist only for sids
this tailor is counting right now (a counter has viewers), at most
``MAX_SIDS`` of them (those counted longest; the rest are summed under
``sid="_other"``), and per value only the top ``TOP_VALUES`` of the last
window of each ``by=`` field: at most MAX_SIDS * (2 + fields * TOP_VALUES)
series. Late hits of ``delay=`` counts are two tailor-wide counters: frames
sent again (``revisions``) and hits too late for that (``too_late``).
A prometheus_client collector: read at each scrape, nothing kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tailor.counts.base import BaseCounter
from tailor.counts.counting import frame
from tailor.counts.stream import Counters

MAX_SIDS = 50
TOP_VALUES = 5
PREFIX = "estrom_tailor_count_"


def _rate(counter: BaseCounter[Any]) -> float:
    return (counter.last.total if counter.last else 0) / counter.every


class CountSeries(Collector):
    """The live counters' hits, rate and last window's top values, per sid; the late hits."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters

    def describe(self) -> list[Metric]:
        return []  # series come and go with the counters: described at collection

    def collect(self) -> Iterator[Metric]:
        hits = CounterMetricFamily(
            PREFIX + "hits", "Hits counted per sid since its counting began in this tailor.", labels=["sid"]
        )
        rate = GaugeMetricFamily(
            PREFIX + "rate", "Hits per second in the last closed window.", labels=["sid"]
        )
        top = GaugeMetricFamily(
            PREFIX + "last_window",
            f"Hits per value of a by= field in its last closed window (top {TOP_VALUES}).",
            labels=["sid", "field", "value"],
        )
        by_sid: dict[str, list[BaseCounter[Any]]] = {}
        for counter in sorted(self.counters, key=lambda c: c.since):
            by_sid.setdefault(counter.sid, []).append(counter)
        sids = list(by_sid)
        for sid in sids[:MAX_SIDS]:
            first = by_sid[sid][0]  # every counter of a sid sees every hit: one is enough
            hits.add_metric([sid], first.hits_total)
            rate.add_metric([sid], _rate(first))
            for counter in by_sid[sid]:
                if counter.by is None or counter.last is None:
                    continue
                for value, n in frame(0, counter.last, TOP_VALUES)["by"].items():
                    top.add_metric([sid, counter.by, value], n)
        rest = [by_sid[sid][0] for sid in sids[MAX_SIDS:]]
        if rest:
            hits.add_metric(["_other"], sum(c.hits_total for c in rest))
            rate.add_metric(["_other"], sum(_rate(c) for c in rest))
        yield hits
        yield rate
        yield top
        yield from self._late()

    def _late(self) -> Iterator[Metric]:
        late = self.counters.late
        yield CounterMetricFamily(
            PREFIX + "revisions",
            "Count frames sent again (revised: true) for hits that came after their window's delay.",
            value=late.revisions,
        )
        yield CounterMetricFamily(
            PREFIX + "too_late",
            "Hits of delay= counts too late to revise their window (no longer kept), per counter.",
            value=late.too_late,
        )
