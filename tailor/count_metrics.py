"""Per-sid count series for ``/metrics``, with a bound on how many.

A team may chart a query's rate in its own dashboards; a label per sid is
safe only while the number of sids is bounded. Series exist only for sids
this tailor is counting right now (a counter has viewers), at most
``MAX_SIDS`` of them (those counted longest; the rest are summed under
``sid="_other"``), and per value only the top ``TOP_VALUES`` of the last
window of each ``by=`` field: at most MAX_SIDS * (2 + fields * TOP_VALUES) series.
"""

from __future__ import annotations

from collections.abc import Iterable

from tailor.count_stream import SharedCounter
from tailor.counting import frame

MAX_SIDS = 50
TOP_VALUES = 5
PREFIX = "estrom_tailor_count_"


def render(counters: Iterable[SharedCounter]) -> str:
    """The count series in Prometheus text format (appended to the tailor's /metrics)."""
    by_sid: dict[str, list[SharedCounter]] = {}
    for counter in sorted(counters, key=lambda c: c.since):
        by_sid.setdefault(counter.sid, []).append(counter)
    kept = list(by_sid)[:MAX_SIDS]
    rest = list(by_sid)[MAX_SIDS:]
    hits: list[tuple[str, float]] = []
    rates: list[tuple[str, float]] = []
    tops: list[tuple[tuple[tuple[str, str], ...], int]] = []
    for sid in kept:
        first = by_sid[sid][0]  # every counter of a sid sees every hit: one is enough
        hits.append((sid, first.hits_total))
        rates.append((sid, (first.last.total if first.last else 0) / first.every))
        for counter in by_sid[sid]:
            if counter.by is None or counter.last is None:
                continue
            top = frame(0, counter.last, TOP_VALUES)["by"]
            for value, n in top.items():
                tops.append(((("field", counter.by), ("sid", sid), ("value", value)), n))
    if rest:
        hits.append(("_other", sum(by_sid[s][0].hits_total for s in rest)))
        rates.append(
            (
                "_other",
                sum((by_sid[s][0].last.total if by_sid[s][0].last else 0) / by_sid[s][0].every for s in rest),
            )
        )
    lines = [
        f"# HELP {PREFIX}hits_total Hits counted per sid since its counting began in this tailor.",
        f"# TYPE {PREFIX}hits_total counter",
        *(f"{PREFIX}hits_total{_labels((('sid', sid),))} {_number(v)}" for sid, v in hits),
        f"# HELP {PREFIX}rate Hits per second in the last closed window, per sid.",
        f"# TYPE {PREFIX}rate gauge",
        *(f"{PREFIX}rate{_labels((('sid', sid),))} {_number(v)}" for sid, v in rates),
        f"# HELP {PREFIX}last_window Hits per value of a by= field in its last closed window (top {TOP_VALUES}).",
        f"# TYPE {PREFIX}last_window gauge",
        *(f"{PREFIX}last_window{_labels(labels)} {n}" for labels, n in tops),
    ]
    return "\n".join(lines) + "\n"


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    def escape(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)
