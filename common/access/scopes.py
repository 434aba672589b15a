"""Read targets as sets of names, and the containment that every access decision rests on.

A reader or writer may use a target only if *everything the target could
cover* lies inside its allowed targets. Deciding that exactly for wildcard
patterns, lists and ``-`` exclusions is more than we need, so
:func:`target_within` answers conservatively: "yes" only when it can prove
containment, "no" when unsure. Names starting with ``.`` (hidden and system
indices) are never inside, whatever the access file says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.query.target_syntax import parse_target

#: estrom's own indices (the stored queries) start with this, unless ESTROM_QUERY_INDEX_PREFIX says
#: otherwise: nobody's to read or write, whatever the access file says.
OWN_PREFIX = "estrom-queries-"
WILDCARDS = frozenset("*?")


@dataclass(frozen=True)
class Scope:
    """What a read target includes and excludes, as containment needs it.

    Built from the store's parser (common/query/target_syntax.py), the one
    parser of read targets, by :func:`scope_of`; the open default is built
    directly (its ``.*`` exclusion is not a target anybody may write).
    """

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    #: the exclusions no later inclusion can add back to (Elasticsearch resolves a list left to
    #: right: ``a*,-a1*,a1x*`` reads a1x*): the only ones a *request* may count on
    final_exclude: tuple[str, ...] = ()


def scope_of(text: str) -> Scope:
    """The :class:`Scope` of a read target; InvalidTarget (from the store's parser) says what is wrong."""
    target = parse_target(text)
    exclude = tuple(p for excluded, patterns in target.runs if excluded for p in patterns)
    last_excluded, last = target.runs[-1]
    return Scope(target.inclusions, exclude, last if last_excluded else ())


def _is_literal(pattern: str) -> bool:
    return not (set(pattern) & WILDCARDS)


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` (a concrete string) matches ``pattern`` (``*`` any run, ``?`` one char)."""
    # Iterative wildcard match with back-tracking to the last star: linear enough for names.
    p = n = 0
    star = -1
    mark = 0
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star = p
            mark = n
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def pattern_contains(outer: str, inner: str) -> bool:
    """Whether every name ``inner`` could match is matched by ``outer`` (sound, not complete).

    Treats ``inner``'s wildcards as literal characters that ``outer`` must
    absorb with its own ``*``: a ``*`` or ``?`` of ``inner`` is matched only
    by a ``*`` of ``outer``. That proves containment for the shapes people
    write (``logs-*`` in ``*``, ``logs-app-*`` in ``logs-*``) and refuses
    when unsure.
    """
    if _is_literal(inner):
        return pattern_matches(outer, inner)

    # Dynamic programming over (outer position, inner position).
    @_memo
    def ok(i: int, j: int) -> bool:
        if i == len(outer):
            return j == len(inner)
        if outer[i] == "*":
            # ``*`` absorbs nothing, or one more character (literal or wildcard) of inner.
            return ok(i + 1, j) or (j < len(inner) and ok(i, j + 1))
        if j == len(inner):
            return False
        c = inner[j]
        if c == "*":
            return False  # an inner star covers runs only an outer star covers
        if c == "?":
            return False  # an outer ``?`` would do, but keep it simple: refuse
        return (outer[i] == "?" or outer[i] == c) and ok(i + 1, j + 1)

    return ok(0, 0)


def _memo(fn: Callable[[int, int], bool]) -> Callable[[int, int], bool]:
    cache: dict[tuple[int, int], bool] = {}

    def wrapped(i: int, j: int) -> bool:
        key = (i, j)
        if key not in cache:
            cache[key] = fn(i, j)
        return cache[key]

    return wrapped


def patterns_disjoint(a: str, b: str) -> bool:
    """Whether no name can match both ``a`` and ``b`` (sound: "True" only when certain).

    Certain when both are literal and differ, when one is literal and the
    other does not match it, or when their literal prefixes (before the first
    wildcard) or suffixes (after the last) disagree.
    """
    if _is_literal(a):
        return not pattern_matches(b, a)
    if _is_literal(b):
        return not pattern_matches(a, b)
    pa, pb = _literal_prefix(a), _literal_prefix(b)
    n = min(len(pa), len(pb))
    if pa[:n] != pb[:n]:
        return True
    sa, sb = _literal_suffix(a), _literal_suffix(b)
    n = min(len(sa), len(sb))
    return n > 0 and sa[-n:] != sb[-n:]


def _literal_prefix(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in WILDCARDS:
            return pattern[:i]
    return pattern


def _literal_suffix(pattern: str) -> str:
    for i in range(len(pattern) - 1, -1, -1):
        if pattern[i] in WILDCARDS:
            return pattern[i + 1 :]
    return pattern


def may_cover_dot_index(pattern: str, target: Scope) -> bool:
    """Whether ``pattern`` could cover a name starting with ``.``, given the target's exclusions."""
    if not (pattern.startswith(".") or pattern[:1] in WILDCARDS):
        return False
    return not any(pattern_contains(x, ".*") for x in target.final_exclude)


def target_within(target: Scope, allowed: Sequence[Scope]) -> bool:
    """Whether everything ``target`` could cover lies inside the union of ``allowed``.

    Each included pattern must be proven inside one allowed entry: inside one
    of its patterns, and clear of each of its exclusions (disjoint from it, or
    excluded by the target itself). Dot-indices are never inside. An empty
    target is refused: it would mean "everything" to the engine.
    """
    if not target.include:
        return False
    for pattern in target.include:
        if may_cover_dot_index(pattern, target):
            return False
        if not any(_pattern_within(pattern, target, entry) for entry in allowed):
            return False
    return True


def _pattern_within(pattern: str, target: Scope, entry: Scope) -> bool:
    if not any(pattern_contains(outer, pattern) for outer in entry.include):
        return False
    for excluded in entry.exclude:
        if patterns_disjoint(pattern, excluded):
            continue
        if any(pattern_contains(own, excluded) for own in target.final_exclude):
            continue
        return False
    return True


#: Without an access file on loopback: anonymous may read (and write) everything but dot-indices.
OPEN_TARGETS = (Scope(("*",), (".*",), (".*",)),)


def names_own(pattern: str, own_prefix: str = OWN_PREFIX) -> bool:
    """Whether ``pattern`` names estrom's own indices by their prefix (``estrom-queries-*``, a name)."""
    return bool(own_prefix) and _literal_prefix(pattern).startswith(own_prefix)
