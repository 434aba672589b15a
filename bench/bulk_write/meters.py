"""What the run reads while it writes: the beater's queue and metrics, and every part's CPU.

The queue tells when the beater has published everything stored through it;
the CPU of each part (and of the rest of the shared machine) is charged to
the side whose blocks ran meanwhile.
"""

from __future__ import annotations

import http.client
import time
import urllib.parse

from bench.measure import cpu_seconds, machine_busy_seconds
from devstack.metrics_page import metric


class QueueWatch:
    """The beater's ``estrom_beater_queue_documents`` (stored, not yet published), over one connection."""

    NAME = b"estrom_beater_queue_documents "

    def __init__(self, beater_url: str) -> None:
        parts = urllib.parse.urlsplit(beater_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def queued(self) -> float:
        self.conn.request("GET", "/metrics")
        for line in self.conn.getresponse().read().splitlines():
            if line.startswith(self.NAME):
                return float(line.split()[1])
        raise RuntimeError("the beater's /metrics has no estrom_beater_queue_documents")

    def drain(self, timeout: float = 300.0) -> float:
        """Seconds until every document stored through the beater is percolated and published."""
        started = time.perf_counter()
        while self.queued() > 0:
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"the beater's queue did not empty in {timeout:.0f} s")
            time.sleep(0.005)
        return time.perf_counter() - started


#: The parts whose CPU is counted, in the order printed; "others": the rest of the machine meanwhile.
PARTS = ("engine", "beater", "router", "tailor")


class CpuMeter:
    """CPU seconds of each part's processes, and of everything else on the machine, from /proc."""

    def __init__(self, trees: dict[str, list[int]]) -> None:
        self.trees = trees

    def now(self) -> dict[str, float]:
        used = {name: cpu_seconds(pids) for name, pids in self.trees.items()}
        used["others"] = machine_busy_seconds() - sum(used.values())
        return used

    @staticmethod
    def add(into: dict[str, float], before: dict[str, float], after: dict[str, float]) -> None:
        for name, value in after.items():
            into[name] = into.get(name, 0.0) + value - before[name]


def percolate_metrics(beater_url: str) -> tuple[float, float]:
    """The beater's percolate requests to the engine so far, and the seconds they took."""
    name = "estrom_beater_percolate_request_seconds"
    return metric(beater_url, f"{name}_count"), metric(beater_url, f"{name}_sum")


def read_back_metrics(beater_url: str) -> tuple[float, float, float]:
    """The beater's documents read back, seconds spent and ``_mget`` chunks, so far."""
    return (
        metric(beater_url, "estrom_beater_bulk_read_back_total"),
        metric(beater_url, "estrom_beater_bulk_read_back_seconds_sum"),
        metric(beater_url, "estrom_beater_bulk_read_back_seconds_count"),
    )
