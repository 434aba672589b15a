"""What the read-target tests ask a beater: what an ingest published, a metric, the end of more sweeps.

Shared by the ``test_read_targets_*`` modules, which watch a beater learn of
targets, aliases and types from its answers and its metrics page.
"""

from __future__ import annotations

from devstack.metrics_page import metric as scraped
from tests.http_client import ingest
from tests.real_stack import ServiceHandle
from tests.waiting import wait_until

#: A beater whose sweeps come twice a second, and whose unsubscribed queries stay stored meanwhile.
FAST_SWEEPS = {"ESTROM_QUERY_GRACE": "600", "ESTROM_QUERY_SWEEP_INTERVAL": "0.5"}


def published(beater: ServiceHandle, index: str, doc: dict | list[dict]) -> int:
    resp = ingest(beater.url, index, doc)
    assert resp.status == 200, resp.body
    return int(resp.json()["published"])


def metric(service: ServiceHandle, name: str) -> float:
    return scraped(service.url, name)


def wait_for_sweeps(service: ServiceHandle, n: int = 2) -> None:
    """Until ``n`` more sweeps ended (the last one started after this call)."""
    name = "estrom_beater_lifecycle_sweeps_total"
    before = metric(service, name)
    wait_until(lambda: metric(service, name) >= before + n, what=f"{n} more sweeps")
