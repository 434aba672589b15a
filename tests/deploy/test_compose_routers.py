"""deploy/compose.routers.yml: the router on two partitions, one crossbar node per container.

Runs after test_compose.py's ``down -v``, on the images it built: ``up``
with the override, then a sid of each partition followed through the
tailor gets its document (beater and tailor reach each sid's node), and a
crash of partition 1's node is that partition's alone: the container's
restart policy brings it back, its tail says ``gap`` and carries on, and
partition 0's tail never notices.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from deploy.router_config import main as render_router_config
from devstack.wamp_client import WampClient
from tests.deploy.compose import REPO, ROUTERS_FILE
from tests.deploy.conftest import Deployment
from tests.deploy.test_compose import BEATER, INDEX, ROUTER, SERVICES, TAILOR, healthy, register
from tests.http_client import http, ingest
from tests.partitions import gaps, hit_numbers, one_query_per_partition
from tests.tailor.tail_client import Tail
from tests.waiting import wait_until

pytestmark = pytest.mark.deploy

FILES = ("-f", "docker-compose.yml", "-f", ROUTERS_FILE)
ROUTER_SERVICES = (*SERVICES, "router-1")

#: Run in the node's container: SIGKILL its router worker, as a crash would.
KILL_ROUTER_WORKER = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        continue
    if b"crossbar.worker" in cmdline and int(pid) != os.getpid():
        os.kill(int(pid), signal.SIGKILL)
        print(pid)
"""


def register_at_the_front(index: str) -> Callable[[str], str]:
    """Registration at the front, the contract's URL, as any client registers."""

    def register_one(query: str) -> str:
        wamp = WampClient(ROUTER)
        try:
            return register(wamp, index, query)
        finally:
            wamp.close()

    return register_one


def crash_router_worker(deployment: Deployment, service: str) -> int:
    """SIGKILL the node's router worker; the node then stops, and with it the container.

    Not ``docker kill``: the engine counts that as a stop and leaves the
    container stopped, where a crash is what the restart policy answers.
    Returns the container's restart count before the crash.
    """
    container = deployment.container(service)
    restarts = int(container.attrs["RestartCount"])
    code, out = container.exec_run(["python", "-c", KILL_ROUTER_WORKER])
    assert code == 0, out
    assert out.split(), f"no router worker in {service}"
    return restarts


def restarted_healthy(deployment: Deployment, service: str, restarts: int) -> bool:
    container = deployment.container(service)
    container.reload()
    state = container.attrs["State"]
    return (
        int(container.attrs["RestartCount"]) > restarts and state.get("Health", {}).get("Status") == "healthy"
    )


def test_the_image_renders_a_partition_node_beside_the_front(tmp_path: Path) -> None:
    """The Dockerfile's two renderings: the front as before, and a node only the services sign in at."""
    configs = {}
    for node in ("front", "partition"):
        render_router_config(str(REPO / "router/config.json"), str(tmp_path / node), "/app/router", node)
        configs[node] = json.loads((tmp_path / node).read_text())
    front, partition = (c["workers"][0]["transports"][0] for c in configs.values())
    assert front["endpoint"] == partition["endpoint"]
    assert front["endpoint"]["interface"] == "0.0.0.0"
    assert sorted(partition["paths"]) == ["metrics", "ws"]
    assert list(partition["paths"]["ws"]["auth"]) == ["wampcra"]
    assert {"/", "vendor", "metrics", "ws"} <= set(front["paths"])
    assert configs["front"]["workers"][0]["options"] == configs["partition"]["workers"][0]["options"]
    with pytest.raises(ValueError, match="front or partition"):
        render_router_config(str(REPO / "router/config.json"), str(tmp_path / "x"), "/app/router", "back")


@pytest.mark.timeout(900)
def test_two_router_partitions_each_sid_at_its_node_a_crash_is_one_partitions_gap(
    deployment: Deployment,
) -> None:
    deployment.compose.run(*FILES, "build")  # the layer cache: seconds after test_compose.py's build
    started = time.monotonic()
    deployment.compose.run(*FILES, "up", "-d", "--wait")
    print(f"up -d --wait with {ROUTERS_FILE}: all healthy after {time.monotonic() - started:.1f} s")
    try:
        assert set(healthy(deployment, ROUTER_SERVICES).values()) == {"healthy"}
        node = deployment.container("router-1")
        assert node.attrs["HostConfig"]["ReadonlyRootfs"] is True
        assert not node.attrs["HostConfig"]["PortBindings"]  # only the services reach it

        run = uuid.uuid4().hex[:8]
        (part0, sid0), (part1, sid1) = one_query_per_partition(register_at_the_front(INDEX), run)
        tail0, tail1 = (Tail(TAILOR, {"s": sid, "format": "ndjson"}) for sid in (sid0, sid1))
        sent = ingest(
            BEATER, INDEX, [{"run": run, "part": part0, "n": 0}, {"run": run, "part": part1, "n": 1}]
        )
        assert sent.status == 200, sent.body
        tail0.wait(lambda t: hit_numbers(t) == [0], 30, "partition 0's hit")
        tail1.wait(lambda t: hit_numbers(t) == [1], 30, "partition 1's hit")

        restarts = crash_router_worker(deployment, "router-1")
        crashed = time.monotonic()
        wait_until(
            lambda: restarted_healthy(deployment, "router-1", restarts), 180, "router-1 restarted, healthy"
        )
        print(f"router-1 restarted by its restart policy, healthy after {time.monotonic() - crashed:.1f} s")
        wait_until(lambda: http("GET", BEATER + "/healthz").status == 200, 60, "the beater rejoined router-1")
        tail1.wait(lambda t: len(gaps(t)) == 1, 60, "partition 1's gap notice")
        assert "router" in gaps(tail1)[0]["reason"]

        sent = ingest(
            BEATER, INDEX, [{"run": run, "part": part0, "n": 2}, {"run": run, "part": part1, "n": 3}]
        )
        assert sent.status == 200, sent.body
        tail0.wait(lambda t: hit_numbers(t) == [0, 2], 30, "partition 0's hit after the crash")
        tail1.wait(lambda t: hit_numbers(t) == [1, 3], 30, "partition 1's hit after its gap")
        assert gaps(tail0) == []  # the front's partition never noticed
        tail0.close()
        tail1.close()
    finally:
        deployment.compose.run(*FILES, "down", "-v")
