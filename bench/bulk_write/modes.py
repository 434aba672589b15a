"""The ways shippers write, one ``Mode`` each: its indices, its pipeline, its live tail, its figures."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from bench.bulk_write.bulk_requests import SHIPPER_FILTER, Poster, bulk_body, matching
from bench.bulk_write.engine_api import engine_call
from devstack.metrics_page import metric

MODES = ("plain", "filter", "pipeline")
#: Processors the pipeline mode's pipeline uses.
PROCESSORS = ("set", "remove")
#: Every index of the run: the fields the tails' queries name are mapped before the first document.
INDEX_BODY = {
    "settings": {"number_of_replicas": 0},
    "mappings": {
        "properties": {
            "level": {"type": "keyword"},
            "n": {"type": "long"},
            "message": {"type": "text"},
            "ssn": {"type": "keyword"},
            "stage": {"type": "keyword"},
        }
    },
}


def missing_processors(engine_url: str) -> list[str]:
    """The processors of ``PROCESSORS`` some node of the engine does not run."""
    nodes = engine_call(engine_url, "GET", "/_nodes/ingest")["nodes"]
    missing: set[str] = set()
    for node in nodes.values():
        have = {p["type"] for p in node.get("ingest", {}).get("processors", [])}
        missing |= set(PROCESSORS) - have
    return sorted(missing)


@dataclass
class Tail:
    """One NDJSON tail on a mode's through index; counts its hits as they arrive."""

    url: str
    hits: int = 0
    #: hits holding the field the pipeline sets and not the one it removes
    as_stored: int = 0
    gaps: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with urllib.request.urlopen(self.url, timeout=600) as resp:
            for line in resp:
                if self.stop.is_set():
                    return
                if line.startswith(b'{"gap"'):
                    self.gaps += 1
                if not line.startswith(b'{"_index"'):
                    continue
                self.hits += 1
                source = json.loads(line).get("_source", {})
                if source.get("stage") == "ingested" and "ssn" not in source:
                    self.as_stored += 1


@dataclass
class Mode:
    name: str
    query: str
    direct_index: str
    through_index: str
    tail: Tail
    direct: Poster
    through: Poster
    expected: int = 0
    skipped: str = ""
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"direct": [], "through": []})
    sizes: dict[str, list[int]] = field(default_factory=lambda: {"direct": [], "through": []})
    #: after each block through: seconds until the beater's queue was empty
    drains: list[float] = field(default_factory=list)
    #: side -> part -> CPU seconds while that side's blocks ran (through: with the waits)
    cpu: dict[str, dict[str, float]] = field(default_factory=lambda: {"direct": {}, "through": {}})
    #: the beater's percolate requests and their seconds while the blocks through ran (and their waits)
    percolate: list[float] = field(default_factory=lambda: [0.0, 0.0])
    unpublished: int = 0

    def indices(self) -> dict[str, str]:
        return {"direct": self.direct_index, "through": self.through_index}

    def send(self, side: str, start: int, docs: int) -> None:
        poster = self.direct if side == "direct" else self.through
        index = self.direct_index if side == "direct" else self.through_index
        answer = poster.bulk(bulk_body(index, start, docs))
        self.latencies[side].append(answer.seconds)
        self.sizes[side].append(answer.size)
        if side == "through":
            self.unpublished += answer.unpublished
            self.expected += matching(start, docs)


def prepare(
    modes: list[str], engine_url: str, beater_url: str, tailor_url: str, tag: str, docs: int
) -> tuple[list[Mode], str | None]:
    """Indices, the pipeline where it can run, one tail per mode, everything warmed."""
    pipeline = None
    skipped = ""
    if "pipeline" in modes:
        missing = missing_processors(engine_url)
        if missing:
            skipped = (
                f"the engine's nodes do not run the {', '.join(missing)} processor(s) (GET /_nodes/ingest)"
            )
        else:
            pipeline = f"bench-bulk-{tag}"
            engine_call(
                engine_url,
                "PUT",
                f"/_ingest/pipeline/{pipeline}",
                {
                    "description": "bench.bulk_write: one field set, one removed",
                    "processors": [
                        {"set": {"field": "stage", "value": "ingested"}},
                        {"remove": {"field": "ssn"}},
                    ],
                },
            )
    out = []
    for name in modes:
        direct_index, through_index = f"bench-bulk-{name}-direct-{tag}", f"bench-bulk-{name}-through-{tag}"
        query_string = {
            "plain": "",
            "filter": f"filter_path={SHIPPER_FILTER}",
            "pipeline": f"pipeline={pipeline}",
        }
        q = "level:error AND stage:ingested" if name == "pipeline" else "level:error"
        params = urllib.parse.urlencode({"i": through_index, "q": q, "format": "ndjson"})
        mode = Mode(
            name,
            query_string[name],
            direct_index,
            through_index,
            Tail(f"{tailor_url}/api/v0.1/docs?{params}"),
            Poster(engine_url, query_string[name]),
            Poster(beater_url, query_string[name]),
        )
        if name == "pipeline" and skipped:
            mode.skipped = skipped
        out.append(mode)
    active = [m for m in out if not m.skipped]
    for mode in active:
        for index in (mode.direct_index, mode.through_index):
            engine_call(engine_url, "PUT", f"/{index}", INDEX_BODY)
        mode.tail.start()
    deadline = time.monotonic() + 60
    while metric(tailor_url, "estrom_tailor_subscriptions") < len(active):
        if time.monotonic() > deadline:
            raise RuntimeError("the tails did not subscribe")
        time.sleep(0.1)
    # Warm every path (connections, first writes into each index, the engine's parsers, the pipeline).
    for mode in active:
        for side in ("direct", "through"):
            mode.send(side, 10**9, docs)
        mode.latencies = {"direct": [], "through": []}
        mode.sizes = {"direct": [], "through": []}
    return out, pipeline


def tear_down(active: list[Mode], engine_url: str, beater_url: str, pipeline: str | None) -> None:
    """Stop the tails; once the beater has nothing left to percolate, delete the indices and the pipeline."""
    for mode in active:
        mode.tail.stop.set()
    deadline = time.monotonic() + 120  # nothing left in percolation before the indices go
    while metric(beater_url, "estrom_beater_queue_documents") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    for mode in active:
        for index in (mode.direct_index, mode.through_index):
            engine_call(engine_url, "DELETE", f"/{index}")
    if pipeline:
        engine_call(engine_url, "DELETE", f"/_ingest/pipeline/{pipeline}")
