"""``fields=``: each hit's ``_source`` cut down to the fields a client asked for.

Live hits and the ``n=`` backfill's are cut here alike, and a pattern means
what it means to the engine's own ``_source`` filtering (Elasticsearch
7.17's and OpenSearch's ``XContentMapValues.filter``, compared document by
document in tests/integration/test_source_projection_engine.py), rule for rule:

- a pattern selects a field and everything under it: ``a`` keeps the whole
  object ``a`` (empty or not), and so does ``a*``, whose ``*`` matches any
  run of characters, dots included (``a*`` also keeps ``ab`` and ``a.b``);
- paths are matched on keys joined by dots, so a flat key with a dot in it
  (``"a.b": 1``) is selected by ``a.b`` and by ``a`` like a nested one;
- inside an object or an array that is not selected as a whole, only what
  the patterns reach is kept: objects of an array are filtered one by one,
  scalars beside them dropped, and objects or arrays left empty dropped;
- a pattern with a character beyond the Basic Multilingual Plane (an emoji)
  matches nothing: the engine compares UTF-16 units against code points
  (``*`` still spans such characters in keys). OpenSearch 3 matches them
  when no pattern has a ``*`` or a dot; estrom follows the others
  (``engine_patterns``: the patterns that can match);
- no pattern at all is the whole source, as the engine's empty includes.

Selected values are the input's own (not copied): a hit is read-only once
published, and copying would cost each view a deep copy per hit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Source = dict[str, Any]

#: A state of the matcher: an index into its table, or ``_DEAD`` (no pattern can match any more).
_DEAD = -1
#: The (state, key) steps, and states, remembered before the matcher starts over: keys seen
#: are usually few, but a sender's documents may carry any keys.
_MEMO_LIMIT = 20_000
#: Longer keys are walked each time rather than held in the memo.
_MEMO_KEY = 128
#: Where a glob may be: (which glob, position in it).
_Position = tuple[int, int]


def engine_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    """The patterns that can match anything: those without characters beyond the BMP."""
    return tuple(p for p in patterns if all(ord(c) <= 0xFFFF for c in p))


class _Matcher:
    """The patterns as an automaton over dotted paths, determinised lazily as keys are met.

    Each pattern ``p`` stands for two globs, ``p`` and ``p.*`` (a selected
    object selects what is under it); a state is the set of glob positions
    reached by the path so far, numbered on first sight. Steps are
    remembered per (state, key), so a stream of like-shaped hits costs a
    dictionary lookup per key; ``reset`` forgets them (between two sources
    only: states are numbers into what it forgets).
    """

    def __init__(self, patterns: tuple[str, ...]) -> None:
        globs: list[str] = []
        for pattern in engine_patterns(patterns):
            while "**" in pattern:
                pattern = pattern.replace("**", "*")
            globs += [pattern, pattern + ".*"]
        self._globs = tuple(globs)
        self._ids: dict[frozenset[_Position], int] = {}
        self._sets: list[frozenset[_Position]] = []
        self._accepts: list[bool] = []
        self._steps: dict[tuple[int, str], int] = {}
        self.start = self.reset()

    @property
    def crowded(self) -> bool:
        return len(self._steps) >= _MEMO_LIMIT or len(self._sets) >= _MEMO_LIMIT

    def reset(self) -> int:
        """Forget every state and step; the new start state."""
        self._ids.clear()
        self._sets.clear()
        self._accepts.clear()
        self._steps.clear()
        self.start = self._state(self._closure((g, 0) for g in range(len(self._globs))))
        return self.start

    def accepts(self, state: int) -> bool:
        return self._accepts[state]

    def step(self, state: int, key: str) -> int:
        """The state after ``key`` (``_DEAD`` if no pattern can match past it)."""
        memo = (state, key)
        found = self._steps.get(memo)
        if found is None:
            found = self._walk(state, key)
            if len(key) <= _MEMO_KEY:
                self._steps[memo] = found
        return found

    def _walk(self, state: int, key: str) -> int:
        positions = self._sets[state]
        for char in key:
            positions = self._closure(self._moves(positions, char))
            if not positions:
                return _DEAD
        return self._state(positions)

    def _moves(self, positions: frozenset[_Position], char: str) -> list[_Position]:
        moved: list[_Position] = []
        for g, i in positions:
            glob = self._globs[g]
            if i < len(glob):
                if glob[i] == "*":
                    moved.append((g, i))
                elif glob[i] == char:
                    moved.append((g, i + 1))
        return moved

    def _closure(self, positions: Any) -> frozenset[_Position]:
        """With every ``*`` also skipped (it matches the empty run)."""
        out: set[_Position] = set()
        for g, i in positions:
            glob = self._globs[g]
            out.add((g, i))
            if i < len(glob) and glob[i] == "*":
                out.add((g, i + 1))  # no ``**``: at most one star to skip
        return frozenset(out)

    def _state(self, positions: frozenset[_Position]) -> int:
        if not positions:
            return _DEAD
        state = self._ids.get(positions)
        if state is None:
            state = self._ids[positions] = len(self._sets)
            self._sets.append(positions)
            self._accepts.append(any(i == len(self._globs[g]) for g, i in positions))
        return state


def compile_fields(patterns: tuple[str, ...]) -> Callable[[Source], Source]:
    """A function from a ``_source`` to its selected fields (a new dict; the input is not modified)."""
    if not patterns:
        return dict
    matcher = _Matcher(patterns)
    step, accepts = matcher.step, matcher.accepts

    def in_object(obj: dict[str, Any], state: int) -> Source:
        out: Source = {}
        for key, value in obj.items():
            at = step(state, key)
            if at == _DEAD:
                continue
            if accepts(at):
                out[key] = value
            elif isinstance(value, dict):
                inner = step(at, ".")
                kept = in_object(value, inner) if inner != _DEAD else None
                if kept:
                    out[key] = kept
            elif isinstance(value, list):
                items = in_array(value, at)
                if items:
                    out[key] = items
        return out

    def in_array(values: list[Any], state: int) -> list[Any]:
        """An array under a key not selected as a whole: its objects filtered, its scalars dropped."""
        inner = step(state, ".")
        out: list[Any] = []
        for value in values:
            kept: Any = None
            if isinstance(value, dict):
                kept = in_object(value, inner) if inner != _DEAD else None
            elif isinstance(value, list):
                kept = in_array(value, state)
            if kept:
                out.append(kept)
        return out

    def project(source: Source) -> Source:
        start = matcher.reset() if matcher.crowded else matcher.start
        return in_object(source, start) if start != _DEAD else {}

    return project
