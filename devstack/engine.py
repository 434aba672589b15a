"""Provision and run a real engine with its percolator, from Maven Central.

Two families, one way: Maven Central publishes each one's stripped server
distribution (``integ-test-zip``) and its modules' jars separately, so we
fetch them with ``mvn``, assemble them once per distribution into a cache
outside the repository, and start nodes from that cache as an unprivileged
user (neither engine runs as root).

The parts, each its own module; their public names are importable from here:

- ``devstack.engine_dists``: the distributions (``Dist``, ``parse_dist``,
  ``TESTED_DISTS``) and the modules installed into them;
- ``devstack.engine_cache``: assembling a distribution into the cache
  (``ensure_engine``, ``cache_dir``, the layout marker);
- ``devstack.engine_runtime``: the user, JDK and JVM flags a node runs with;
- ``devstack.engine_node``: running a node or a cluster (``EngineNode``,
  ``cluster_nodes``, ``start_cluster``).

``python -m devstack.engine [DIST ...]`` provisions the cache and prints each
engine home, one a line (scripts/bootstrap, scripts/test and
scripts/container-engine read it).
"""

from __future__ import annotations

import sys

from devstack.engine_cache import LAYOUT, MARKER, cache_dir, dist_of_home, ensure_engine
from devstack.engine_dists import (
    DEFAULT_DIST,
    ENGINE_VERSION,
    PAINLESS_POLICY,
    TESTED_DISTS,
    Dist,
    Module,
    parse_dist,
    selected_dist,
)
from devstack.engine_node import EngineNode, cluster_nodes, start_cluster
from devstack.engine_runtime import ENGINE_USER, JAVA17, JAVA21_PLUS, ensure_engine_user, java_home

__all__ = [
    "DEFAULT_DIST",
    "ENGINE_USER",
    "ENGINE_VERSION",
    "JAVA17",
    "JAVA21_PLUS",
    "LAYOUT",
    "MARKER",
    "PAINLESS_POLICY",
    "TESTED_DISTS",
    "Dist",
    "EngineNode",
    "Module",
    "cache_dir",
    "cluster_nodes",
    "dist_of_home",
    "ensure_engine",
    "ensure_engine_user",
    "java_home",
    "main",
    "parse_dist",
    "selected_dist",
    "start_cluster",
]


def main(argv: list[str]) -> None:
    """``python -m devstack.engine [DIST ...]``: provision the cache (used by scripts/bootstrap).

    Without arguments, the distribution ``ESTROM_ENGINE_DIST`` names; ``all``:
    every distribution the test matrix runs.
    """
    wanted = list(TESTED_DISTS) if argv == ["all"] else (argv or [selected_dist().name])
    for name in wanted:
        print(ensure_engine(parse_dist(name)))


if __name__ == "__main__":
    main(sys.argv[1:])
