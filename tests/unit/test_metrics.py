from __future__ import annotations

from common.metrics import Metrics


def test_prometheus_text() -> None:
    m = Metrics("x_")
    m.counter("req_total", "Requests.")
    m.gauge("depth", "Queue depth.", lambda: 3)
    m.inc("req_total", outcome="ok")
    m.inc("req_total", 2, outcome='we"ird')
    text = m.render()
    assert "# TYPE x_req_total counter" in text
    assert 'x_req_total{outcome="ok"} 1' in text
    assert 'x_req_total{outcome="we\\"ird"} 2' in text
    assert "x_depth 3" in text
    assert m.value("req_total", outcome="ok") == 1
