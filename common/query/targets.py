"""Read targets in the store: the parser (``target_syntax``) and the percolator index of a target.

The parsing, canonical form and coverage by name live in
common/query/target_syntax.py, standard library only, so that the router's
readers gate uses the very same parser; they are re-exported here for the
store. This module adds what needs farmhash.
"""

from __future__ import annotations

import farmhash

from common.query.target_syntax import (
    InvalidTarget,
    Target,
    canonical_target,
    globs_overlap,
    parse_target,
    target_problem,
)

__all__ = [
    "InvalidTarget",
    "Target",
    "canonical_target",
    "globs_overlap",
    "parse_target",
    "percolator_suffix",
    "target_problem",
]


def percolator_suffix(target: Target) -> str:
    """What follows the prefix in the name of the target's percolator index.

    A single name keeps ``estrom-queries-<name>``, the name queries on one
    index always had. Any other target gets ``_t`` and farmhash64 of its
    canonical form: an engine-legal name, and never the one of a concrete
    index (no index name starts with ``_``). The canonical target itself is
    kept in the index's ``_meta``, from which any beater rebuilds the set.
    """
    name = target.single_name
    if name is not None:
        return name
    return "_t" + format(farmhash.hash64(target.canonical), "016x")
