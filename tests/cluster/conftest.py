"""A real cluster of the engine ESTROM_ENGINE_DIST names: three nodes on loopback ports.

Every node is master-eligible and holds data; percolator indices get 3
shards and 1 replica, so each shard has a copy on another node and any one
node may be lost. The beater and tailor get all three URLs
(``ESTROM_ENGINE_URL`` comma-separated). A test that kills a node starts it
again before it ends, so the next test finds three nodes.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.engine import EngineNode, cluster_nodes, start_cluster
from devstack.processes import free_port
from devstack.settings import engine_dist, engine_home
from devstack.stack import Stack
from tests.real_stack import RouterHandle, service_fixture
from tests.waiting import wait_until

NODES = 3
#: What the cluster tests give beater and tailor.
CLUSTER_SETTINGS = {
    "ESTROM_QUERY_INDEX_SHARDS": "3",
    "ESTROM_QUERY_INDEX_REPLICAS": "1",
    # Three JVMs on a shared 2-core machine: creating a 3-shard index can take seconds.
    "ESTROM_ENGINE_TIMEOUT": "15",
}


def get_json(url: str, timeout: float = 30.0) -> object:  # three JVMs on a busy 2-core machine
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


@dataclass
class Cluster:
    """Three engine nodes; ``url`` lists them all, as ``ESTROM_ENGINE_URL`` does."""

    nodes: list[EngineNode]
    workdir: Path

    @property
    def url(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def live(self) -> list[EngineNode]:
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def by_name(self, name: str) -> EngineNode:
        return next(n for n in self.nodes if n.node_name == name)

    def master(self) -> EngineNode:
        """The elected master (cluster manager), as a live node says."""
        rows = get_json(f"{self.live()[0].url}/_cat/master?format=json")
        assert isinstance(rows, list)
        return self.by_name(rows[0]["node"])

    def health(self, **params: str) -> dict:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        for node in self.live():
            try:
                # Longer than any wait_for_* timeout a caller passes (60 s at most).
                health = get_json(f"{node.url}/_cluster/health?{query}", timeout=75)
                assert isinstance(health, dict)
                return health
            except OSError:
                continue
        raise RuntimeError("no live node answers")

    def wait_nodes(self, count: int, timeout: float = 120.0) -> None:
        def ready() -> bool:
            try:
                health = self.health()
            except (RuntimeError, OSError):
                return False
            return health["number_of_nodes"] == count and health["status"] in ("green", "yellow")

        wait_until(ready, timeout, f"{count} nodes in the cluster")

    def restart(self, node: EngineNode) -> None:
        node.start(log_path=self.workdir / f"{node.node_name}.log")
        # An OpenSearch 3.8 JVM may take minutes to boot on a loaded 2-core machine.
        self.wait_nodes(NODES, 420)
        wait_until(lambda: self.health()["status"] == "green", 120, "green again")


@pytest.fixture(scope="package")
def cluster(stack: Stack) -> Iterator[Cluster]:
    workdir = stack.workdir / "cluster"
    nodes = cluster_nodes(engine_home(engine_dist()), workdir, NODES, ports=free_port)
    try:
        start_cluster(nodes, workdir)
        yield Cluster(nodes, workdir)
    finally:
        for node in nodes:
            node.stop()


@pytest.fixture(scope="package")
def cluster_router(stack: Stack) -> Iterator[RouterHandle]:
    handle = stack.start_router("cluster-router")
    yield handle
    handle.stop()


beaters = service_fixture("beater", "cluster", "cluster_router", "Beaters on all three nodes.")
tailors = service_fixture("tailor", "cluster", "cluster_router", "Tailors on all three nodes.")
