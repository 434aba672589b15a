"""What the query store and the percolator report to ``/metrics``: counts kept until a registry is attached.

The store and the percolator are built before the beater's metrics know
them; ``StoreEvents`` is the one object both hold (the percolator through
the target set), and ``attach`` declares the metrics on a service's
``Metrics`` and forwards everything from then on (``beater/queries/rpc.py`` attaches
it). Safe from engine threads: prometheus_client's metrics lock themselves.
"""

from __future__ import annotations

import threading
from typing import Any

#: name -> (kind, help, label names)
METRICS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "queries_refused_total": (
        "counter",
        "register_query calls refused by a limit, by the setting that names it.",
        ("limit",),
    ),
    "percolator_fields": (
        "gauge",
        "Fields mapped in each shared percolator index, as the engine counts them against its limit.",
        ("index",),
    ),
    "percolator_field_limit": (
        "gauge",
        "index.mapping.total_fields.limit of each shared percolator index.",
        ("index",),
    ),
    "percolator_repairs_total": (
        "counter",
        "Shared percolator indices rebuilt with only the fields their queries name, by outcome.",
        ("outcome",),
    ),
    "percolate_documents_folded_total": (
        "counter",
        "Documents percolated again with the fields the percolator index does not map folded into "
        "the default field (their own mapping would have passed the index's field limit).",
        (),
    ),
}


class StoreEvents:
    """Counters and gauges of the store; forwarded to a ``Metrics`` once attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: Any = None
        #: what happened before ``attach`` (and everything, for tests): (name, labels) -> value
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def attach(self, metrics: Any) -> None:
        """Declare the store's metrics on ``metrics`` and forward to it, what was counted before too."""
        for name, (kind, help_text, labels) in METRICS.items():
            if kind == "counter":
                metrics.counter(name, help_text, labels)
            else:
                metrics.gauge(name, help_text, labels=labels)
        with self._lock:
            self._metrics = metrics
            earlier = dict(self.values)
        for (name, labels), value in earlier.items():
            if METRICS[name][0] == "counter":
                metrics.inc(name, value, **dict(labels))
            else:
                metrics.set(name, value, **dict(labels))

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = self.values.get(key, 0) + amount
            metrics = self._metrics
        if metrics is not None:
            metrics.inc(name, amount, **labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = value
            metrics = self._metrics
        if metrics is not None:
            metrics.set(name, value, **labels)

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)
