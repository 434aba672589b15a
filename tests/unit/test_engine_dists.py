"""ESTROM_ENGINE_DIST names one distribution; each is fetched and started its family's way."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.engine import DEFAULT_DIST, TESTED_DISTS, Dist, cluster_nodes, parse_dist


def test_default_is_elasticsearch_7_17() -> None:
    assert parse_dist(DEFAULT_DIST) == Dist("elasticsearch", "7.17.29")
    assert DEFAULT_DIST in TESTED_DISTS


@pytest.mark.parametrize(
    ("name", "zip_artifact", "percolator", "plugin_class", "java21"),
    [
        (
            "elasticsearch-7.17.29",
            "org.elasticsearch.distribution.integ-test-zip:elasticsearch:7.17.29:zip",
            "org.elasticsearch.plugin:percolator-client:7.17.29",
            "org.elasticsearch.percolator.PercolatorPlugin",
            False,
        ),
        (
            "opensearch-2.19.6",
            "org.opensearch.distribution.integ-test-zip:opensearch:2.19.6:zip",
            "org.opensearch.plugin:percolator-client:2.19.6",
            "org.opensearch.percolator.PercolatorPlugin",
            False,
        ),
        (
            "opensearch-3.8.0",
            "org.opensearch.distribution.integ-test-zip:opensearch:3.8.0:zip",
            "org.opensearch.plugin:percolator-client:3.8.0",
            "org.opensearch.percolator.PercolatorModulePlugin",
            True,
        ),
    ],
)
def test_artifacts_and_runtime(
    name: str, zip_artifact: str, percolator: str, plugin_class: str, java21: bool
) -> None:
    dist = parse_dist(name)
    assert dist.name == name
    assert dist.dist_artifact == zip_artifact
    assert dist.percolator_artifact == percolator
    assert dist.percolator_class == plugin_class
    assert dist.needs_java21 is java21


@pytest.mark.parametrize(
    "text", ["opensearch", "opensearch-2.19", "elasticsearch-8.15.0", "opensearch-1.3.20", "solr-9.0.0", "x"]
)
def test_other_names_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"ESTROM_ENGINE_DIST|percolator|OpenSearch"):
        parse_dist(text)


def test_cluster_nodes_know_each_other(tmp_path: Path) -> None:
    """Every node seeds all transport ports and names all nodes for the first election; none shares a port."""
    ports = iter(range(40000, 40100))
    nodes = cluster_nodes(tmp_path / "home", tmp_path / "state", 3, heap="256m", ports=lambda: next(ports))
    names = [n.node_name for n in nodes]
    assert names == ["node-0", "node-1", "node-2"]
    transports = [n.transport_port for n in nodes]
    assert all(n.seed_ports == transports and n.initial_masters == names for n in nodes)
    used = transports + [n.http_port for n in nodes]
    assert len(set(used)) == 6
    assert {n.state_dir for n in nodes} == {tmp_path / "state" / name for name in names}
    assert {n.cluster_name for n in nodes} == {"estrom-cluster"}
    assert {n.heap for n in nodes} == {"256m"}
    assert all(n.process is None for n in nodes), "built, not started"
