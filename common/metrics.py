"""A service's ``/metrics``: prometheus_client, one registry per service object.

Each service (beater, tailor) owns a ``Metrics``: its own
``CollectorRegistry``, never the module-global default one, so that tests and
several services in one process keep their counts apart. The registry holds
the standard ``process_*`` metrics (CPU, resident memory, open files) and
the platform info, and the service's counters, gauges and latency
histograms, all under the service's prefix (``estrom_beater_``).

The service code names its metrics by their short name
(``metrics.inc("ingest_requests_total", outcome="ok")``), declared once with
their label names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

#: Latency buckets in seconds: from a fast engine round trip to the sender's timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

#: What ``/metrics`` answers with, the format ``generate_latest`` writes.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_Metric = Counter | Gauge | Histogram


class Metrics:
    """A service's metrics, in a registry of its own."""

    def __init__(self, prefix: str, *, process: bool = True) -> None:
        self.prefix = prefix
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self._metrics: dict[str, _Metric] = {}

    def _declare(self, name: str, metric: _Metric) -> None:
        self._metrics[name] = metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        """A counter; ``name`` ends with ``_total`` as it is exposed."""
        if name not in self._metrics:
            self._declare(name, Counter(self.prefix + name, help_text, labels, registry=self.registry))

    def gauge(
        self,
        name: str,
        help_text: str,
        source: Callable[[], float] | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        """A gauge, set by the code or read from ``source`` at each scrape."""
        if name in self._metrics:
            return
        gauge = Gauge(self.prefix + name, help_text, labels, registry=self.registry)
        if source is not None:
            gauge.set_function(source)
        self._declare(name, gauge)

    def histogram(
        self,
        name: str,
        help_text: str,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        labels: Sequence[str] = (),
    ) -> None:
        """A latency histogram in seconds (``name`` ends with ``_seconds``)."""
        if name not in self._metrics:
            metric = Histogram(self.prefix + name, help_text, labels, registry=self.registry, buckets=buckets)
            self._declare(name, metric)

    def _child(self, name: str, labels: dict[str, str]) -> _Metric:
        metric = self._metrics[name]
        return metric.labels(**labels) if labels else metric

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        child = self._child(name, labels)
        assert isinstance(child, Counter | Gauge)
        child.inc(amount)

    def set(self, name: str, value: float, **labels: str) -> None:
        child = self._child(name, labels)
        assert isinstance(child, Gauge)
        child.set(value)

    def observe(self, name: str, seconds: float, **labels: str) -> None:
        child = self._child(name, labels)
        assert isinstance(child, Histogram)
        child.observe(seconds)

    @contextmanager
    def timer(self, name: str, **labels: str) -> Iterator[None]:
        """Observe how long the ``with`` block takes (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - started, **labels)

    def value(self, name: str, **labels: str) -> float:
        """The current value of a counter or gauge (a histogram's count), 0 if never set."""
        metric = self._metrics[name]
        sample = self.prefix + name
        if isinstance(metric, Counter) and not sample.endswith("_total"):
            sample += "_total"
        if isinstance(metric, Histogram):
            sample += "_count"
        found = self.registry.get_sample_value(sample, labels)
        return 0.0 if found is None else found

    def render(self) -> bytes:
        """The exposition for ``/metrics``."""
        return generate_latest(self.registry)
