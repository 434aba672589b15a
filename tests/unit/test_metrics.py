"""The metrics registry: prometheus_client's exposition, one registry per service."""

from prometheus_client.parser import text_string_to_metric_families

from common.metrics import Metrics


def families(m: Metrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_counters_gauges_and_labels_in_the_standard_exposition() -> None:
    m = Metrics("x_")
    m.counter("req_total", "Requests.", labels=("outcome",))
    m.gauge("queue", "Queue.", lambda: 3)
    m.inc("req_total", outcome="ok")
    m.inc("req_total", 2, outcome='we"ird')
    text = m.render().decode()
    assert "# TYPE x_req_total counter" in text
    assert 'x_req_total{outcome="ok"} 1.0' in text
    assert 'x_req_total{outcome="we\\"ird"} 2.0' in text
    assert "x_queue 3.0" in text
    assert m.value("req_total", outcome="ok") == 1
    assert m.value("req_total", outcome="never") == 0
    assert m.value("queue") == 3


def test_process_metrics_are_there() -> None:
    names = families(Metrics("x_"))
    for name in ("process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"):
        assert name in names


def test_histograms_observe_seconds() -> None:
    m = Metrics("x_")
    m.histogram("request_seconds", "Requests.", labels=("outcome",))
    m.observe("request_seconds", 0.003, outcome="ok")
    with m.timer("request_seconds", outcome="ok"):
        pass
    hist = families(m)["x_request_seconds"]
    samples = {(s.name, s.labels.get("le")): s.value for s in hist.samples if s.labels.get("outcome") == "ok"}
    assert samples[("x_request_seconds_count", None)] == 2
    assert samples[("x_request_seconds_bucket", "0.005")] == 2
    assert m.value("request_seconds", outcome="ok") == 2


def test_services_in_one_process_keep_their_counts_apart() -> None:
    one, two = Metrics("estrom_beater_"), Metrics("estrom_beater_")
    for m in (one, two):
        m.counter("published_hits_total", "Hits.")
    one.inc("published_hits_total", 5)
    assert one.value("published_hits_total") == 5
    assert two.value("published_hits_total") == 0


def test_declaring_twice_keeps_the_first() -> None:
    m = Metrics("x_")
    m.counter("lookups_total", "Lookups.", labels=("outcome",))
    m.counter("lookups_total", "Lookups, declared again by a part that does not know the labels.")
    m.inc("lookups_total", outcome="found")
    assert m.value("lookups_total", outcome="found") == 1
