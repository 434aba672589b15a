"""What the processes under test cost: CPU seconds and RSS from /proc, and percentiles.

Read from /proc rather than asked of the processes, so that measuring costs
them nothing; the machine is shared, so "other" (everything else that ran
meanwhile) is measured too.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def proc_status_kib(pid: int, key: str) -> int:
    """``VmRSS``/``VmHWM`` of a process in KiB, 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pids: list[int]) -> int:
    """Resident memory of these processes together, KiB."""
    return sum(proc_status_kib(pid, "VmRSS") for pid in pids)


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (the crossbar controller forks its router worker)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_ppid = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(pid_ppid[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (all their threads) so far."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent on anything but idle and I/O wait since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile in ms of values in seconds (None for an empty list)."""
    if not xs:
        return None
    s = sorted(xs)
    return 1000 * s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))]


@dataclass
class Usage:
    """What the processes used during one run: CPU seconds and % of one core, peak RSS in MiB."""

    wall: float
    cpu_s: dict[str, float]
    rss_mib: dict[str, float]

    def cpu_pct(self, name: str) -> float:
        return 100 * self.cpu_s.get(name, 0.0) / self.wall if self.wall else 0.0


class Probe:
    """CPU use of every named process tree, and their peak VmRSS sampled every 50 ms."""

    def __init__(self, trees: dict[str, list[int]]) -> None:
        self.trees = trees
        self.peaks = dict.fromkeys(trees, 0)
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="probe")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for name, pids in list(self.trees.items()):
                rss = sum(proc_status_kib(p, "VmRSS") for p in pids)
                self.peaks[name] = max(self.peaks.get(name, 0), rss)

    def _used(self) -> dict[str, float]:
        used = {name: cpu_seconds(pids) for name, pids in self.trees.items()}
        used["other"] = machine_busy_seconds() - sum(used.values())
        return used

    def start(self) -> None:
        self.peaks = dict.fromkeys(self.trees, 0)
        self._cpu0 = self._used()
        self._t0 = time.perf_counter()

    def usage(self) -> Usage:
        wall = time.perf_counter() - self._t0
        used = self._used()
        cpu = {name: max(0.0, used[name] - self._cpu0[name]) for name in used}
        return Usage(wall, cpu, {name: kib / 1024 for name, kib in self.peaks.items()})

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


def thread_cpu_seconds(tid: int) -> float:
    """User + system CPU time of one thread of this process (the swarm's loop)."""
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
