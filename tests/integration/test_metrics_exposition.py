"""``/metrics`` of beater and tailor: prometheus_client's exposition, read with its own parser.

Every metric name that existed before prometheus_client is still there, the
standard ``process_*`` metrics are, and the latency histograms count what a
tail's round trip went through: the ingest request, its percolation, the
publish acknowledgement and the delivery to the tail.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.http_client import http, ingest
from tests.real_stack import ServiceHandle
from tests.tailor.tail_client import Tail

pytestmark = pytest.mark.integration

BEATER_NAMES = [
    "estrom_beater_ingest_requests",
    "estrom_beater_ingest_documents",
    "estrom_beater_published_hits",
    "estrom_beater_queries_registered",
    "estrom_beater_query_matches",
    "estrom_beater_lifecycle_sweeps",
    "estrom_beater_queries_deactivated",
    "estrom_beater_queries_collected",
    "estrom_beater_lifecycle_lookups",
    "estrom_beater_queue_documents",
    "estrom_beater_batches_total",
]
TAILOR_NAMES = [
    "estrom_tailor_clients",
    "estrom_tailor_subscriptions",
    "estrom_tailor_pending_bytes",
    "estrom_tailor_streams",
    "estrom_tailor_requests_failed",
    "estrom_tailor_hits_sent",
    "estrom_tailor_clients_dropped",
    "estrom_tailor_streams_ended",
]
PROCESS = ["process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"]


def scrape(service: ServiceHandle) -> dict[str, object]:
    resp = http("GET", service.url + "/metrics")
    assert resp.status == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(resp.body.decode())}


def count(families: dict[str, object], name: str) -> float:
    return sum(s.value for s in families[name].samples if s.name == name + "_count")


def test_names_process_metrics_and_latency_histograms(
    beater: ServiceHandle, tailor: ServiceHandle, index: str
) -> None:
    tail = Tail(tailor.url, {"i": index, "q": "kind:timed"})
    try:
        assert tail.status == 200
        resp = ingest(beater.url, index, [{"kind": "timed", "n": 1}])
        assert resp.status == 200
        tail.wait_hits(1)
    finally:
        tail.close()
    beater_families, tailor_families = scrape(beater), scrape(tailor)
    for name in [*BEATER_NAMES, *PROCESS]:
        assert name in beater_families, name
    for name in [*TAILOR_NAMES, *PROCESS]:
        assert name in tailor_families, name
    for name in (
        "estrom_beater_ingest_request_seconds",
        "estrom_beater_percolate_request_seconds",
        "estrom_beater_publish_ack_seconds",
    ):
        assert beater_families[name].type == "histogram"
        assert count(beater_families, name) >= 1, name
    assert count(tailor_families, "estrom_tailor_delivery_seconds") >= 1
