"""Read targets as written: what ``register_query``'s ``index`` and the tailor's ``i=`` may name.

Elasticsearch's multi-target syntax: a concrete index, a comma-separated
list, ``*`` wildcards and ``-`` exclusions (``logs-*,-logs-debug-*``), alias
and data stream names. Elasticsearch resolves a list left to right, and
``-x`` removes what matches ``x`` from what the segments *before* it matched
(a later segment can add it back), and is an exclusion only once a wildcard
came before it. So the canonical target keeps the order of the runs of
segments and sorts only inside a run:

* a run of consecutive inclusions is a union: sorted, duplicates dropped;
* a run of consecutive exclusions removes their union: sorted, duplicates
  dropped;
* runs keep their order: ``a*,-a1*,a1x*`` (a1x* added back) and
  ``a*,a1x*,-a1*`` (a1x* excluded) stay different targets.

So ``b,a,a`` is ``a,b``, and ``logs-*`` and ``logs-2026.*`` are different
targets even on a day when they cover the same indices. The canonical target
is part of the sid. Coverage is decided by name here (``covers``), and by
the engine's aliases and data streams through the names passed in.

Standard library only (with common/indices.py): the router's readers gate
(router/estrom_router/, its own virtualenv without pyfarmhash) parses targets
with this module too, through common/access/. What needs farmhash (the
name of a target's percolator index) is in common/query/targets.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache, lru_cache

from common.indices import index_name_problem


class InvalidTarget(ValueError):
    """The read target is not one Elasticsearch would accept; the message says why."""


@dataclass(frozen=True)
class Target:
    """A canonical read target: runs of (excluded?, sorted patterns), in written order."""

    runs: tuple[tuple[bool, tuple[str, ...]], ...]

    @property
    def canonical(self) -> str:
        """The canonical spelling, itself a valid target (what ``describe_query`` returns)."""
        return ",".join(("-" + p if excluded else p) for excluded, patterns in self.runs for p in patterns)

    @property
    def single_name(self) -> str | None:
        """The name when the target is one name without wildcards (an index, alias or data stream)."""
        if len(self.runs) == 1 and len(self.runs[0][1]) == 1 and "*" not in self.runs[0][1][0]:
            return self.runs[0][1][0]
        return None

    @property
    def inclusions(self) -> tuple[str, ...]:
        """Every included pattern (for the index templates that could apply)."""
        return tuple(p for excluded, patterns in self.runs if not excluded for p in patterns)

    def selects(self, name: str) -> bool:
        """Whether the resolution of this target keeps ``name`` (an index, alias or data stream name)."""
        kept = False
        for excluded, patterns in self.runs:
            if any(_matches(p, name) for p in patterns):
                kept = not excluded
        return kept

    def covers(self, names: Iterable[str]) -> bool:
        """Whether a document stored in an index known by ``names`` is covered.

        ``names``: the concrete index, the aliases pointing at it, the data
        stream it backs (``TargetTopology.names_of``).
        """
        return any(self.selects(n) for n in names)


def _matches(pattern: str, name: str) -> bool:
    if "*" not in pattern:
        return pattern == name
    # As the engine's wildcard resolution: hidden (dot) names only for a dot pattern.
    if name.startswith(".") and not pattern.startswith("."):
        return False
    return fnmatchcase(name, pattern.replace("[", "[[]"))


def _segment_problem(pattern: str) -> str | None:
    """Why a segment (without its ``-``) is not a name or pattern Elasticsearch accepts."""
    if "?" in pattern:
        return "index patterns support '*' only, not '?'"
    if "*" in pattern:
        # The rest of a pattern follows the rules of names: check it with '*' as a letter.
        problem = index_name_problem(pattern.replace("*", "x"))
        return problem.replace("index name", "index pattern") if problem else None
    return index_name_problem(pattern)


@lru_cache(maxsize=4096)
def parse_target(text: str) -> Target:
    """The canonical target of ``text``; raises InvalidTarget with the reason."""
    if not isinstance(text, str):
        raise InvalidTarget("index must be a string")
    if not text:
        raise InvalidTarget("index name must not be empty")
    if all(segment.startswith("-") for segment in text.split(",")):
        raise InvalidTarget(f"index target {text!r} holds only exclusions: name what to read first")
    runs: list[tuple[bool, list[str]]] = []
    wildcard_seen = False
    for position, segment in enumerate(text.split(",")):
        if not segment:
            raise InvalidTarget(f"index target {text!r} has an empty segment at position {position + 1}")
        excluded = segment.startswith("-") and len(runs) > 0
        pattern = segment[1:] if excluded else segment
        if excluded and not pattern:
            raise InvalidTarget(
                f"index target {text!r} has an empty exclusion '-' at position {position + 1}"
            )
        if excluded and not wildcard_seen:
            raise InvalidTarget(
                f"exclusion {segment!r} must follow a wildcard pattern it excludes from (as in logs-*,-logs-debug-*)"
            )
        problem = _segment_problem(pattern)
        if problem:
            if segment.startswith("-") and not runs:
                problem = f"index target {text!r} starts with an exclusion: {problem}"
            raise InvalidTarget(problem if "," not in text else f"{problem} (segment {segment!r})")
        wildcard_seen = wildcard_seen or "*" in pattern
        if runs and runs[-1][0] == excluded:
            runs[-1][1].append(pattern)
        else:
            runs.append((excluded, [pattern]))
    return Target(tuple((excluded, tuple(sorted(set(patterns)))) for excluded, patterns in runs))


def target_problem(text: str) -> str | None:
    """Why ``text`` is not a valid read target, or None."""
    try:
        parse_target(text)
    except InvalidTarget as exc:
        return str(exc)
    return None


def canonical_target(text: str) -> str:
    """The canonical spelling of a valid target (raises InvalidTarget)."""
    return parse_target(text).canonical


def globs_overlap(a: str, b: str) -> bool:
    """Whether some name matches both ``*``-patterns ``a`` and ``b`` (a template applies to a target)."""

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return go(i + 1, j) or (j < len(b) and go(i, j + 1))
        if j < len(b) and b[j] == "*":
            return go(i, j + 1) or (i < len(a) and go(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and go(i + 1, j + 1)

    return go(0, 0)
