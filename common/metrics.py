"""A tiny Prometheus text-format registry: counters and gauges with labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels
    )
    return "{" + inner + "}"


@dataclass
class _Metric:
    name: str
    help: str
    kind: str
    values: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)
    source: Callable[[], float] | None = None


class Metrics:
    """Counters are incremented by the code; gauges may be read from a callable."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._metrics: dict[str, _Metric] = {}

    def counter(self, name: str, help_text: str) -> None:
        self._metrics[name] = _Metric(self.prefix + name, help_text, "counter")

    def gauge(self, name: str, help_text: str, source: Callable[[], float] | None = None) -> None:
        self._metrics[name] = _Metric(self.prefix + name, help_text, "gauge", source=source)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        metric = self._metrics[name]
        key = tuple(sorted(labels.items()))
        metric.values[key] = metric.values.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        self._metrics[name].values[tuple(sorted(labels.items()))] = value

    def value(self, name: str, **labels: str) -> float:
        metric = self._metrics[name]
        if metric.source is not None:
            return metric.source()
        return metric.values.get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            values = {(): metric.source()} if metric.source is not None else metric.values or {(): 0}
            for labels, value in sorted(values.items()):
                number = int(value) if float(value).is_integer() else value
                lines.append(f"{metric.name}{_labels(labels)} {number}")
        return "\n".join(lines) + "\n"
