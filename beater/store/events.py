"""What the query store and the percolator report to ``/metrics``.

``StoreEvents`` is the one object both hold (the percolator through the
target set): built with the beater's ``Metrics``, it declares the store's
metrics there and forwards every count. It also keeps the values itself, for
tests and for a store built without metrics. Safe from engine threads:
prometheus_client's metrics lock themselves.
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
    "percolator_fields_refused_total": (
        "counter",
        "Document fields a shared percolator index refused to map (mapped there with another type, or "
        "an object where a value is): each counted once, and not asked again at the next sweeps.",
        ("index",),
    ),
    "percolate_documents_folded_total": (
        "counter",
        "Documents percolated again with the fields the percolator index does not map folded into "
        "the default field (their own mapping would have passed the index's field limit).",
        (),
    ),
}


class StoreEvents:
    """Counters and gauges of the store, forwarded to ``metrics`` (None: kept here only)."""

    def __init__(self, metrics: Any = None) -> None:
        self._lock = threading.Lock()
        self._metrics = metrics
        #: everything counted: (name, labels) -> value
        self.values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        if metrics is None:
            return
        for name, (kind, help_text, labels) in METRICS.items():
            if kind == "counter":
                metrics.counter(name, help_text, labels)
            else:
                metrics.gauge(name, help_text, labels=labels)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = self.values.get(key, 0) + amount
        if self._metrics is not None:
            self._metrics.inc(name, amount, **labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self.values[key] = value
        if self._metrics is not None:
            self._metrics.set(name, value, **labels)

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)
