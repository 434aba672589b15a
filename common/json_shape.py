"""Shape checks of decoded JSON that must run before any recursive code sees it.

Everything downstream (canonical forms, ``json.dumps``, the engine client)
recurses once per nesting level and encodes strings as UTF-8, so a value
nested a few thousand levels deep, a lone surrogate (``"\\ud800"`` is valid
JSON but not Unicode) or a non-finite number (``1e400``, ``NaN``, which
Python's parser accepts but Elasticsearch does not) would fail far from where
it came in. These walks are iterative and stop at the first problem.
"""

from __future__ import annotations

import math
from typing import Any


def nesting_depth(value: Any, stop_above: int) -> int:
    """Levels of objects and arrays (a scalar is 0, ``{}`` is 1); stops counting past ``stop_above``.

    Level by level rather than node by node: it runs for every ingested
    document, and list extends cost a fraction of a tuple per node.
    """
    depth = 0
    level: list[Any] = [value]
    while True:
        below: list[Any] = []
        containers = False
        for node in level:
            if isinstance(node, dict):
                below.extend(node.values())
                containers = True
            elif isinstance(node, list):
                below.extend(node)
                containers = True
        if not containers:
            return depth
        depth += 1
        if depth > stop_above:
            return depth
        level = below


def value_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be passed on as JSON to the engine, or None."""
    level: list[Any] = [value]
    while level:
        below: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                for key in node:
                    problem = _string_problem(key)
                    if problem:
                        return problem
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
            elif isinstance(node, str):
                problem = _string_problem(node)
                if problem:
                    return problem
            elif isinstance(node, float) and not math.isfinite(node):
                return f"number {node} is out of range (JSON numbers must be finite doubles)"
        level = below
    return None


def _string_problem(text: str) -> str | None:
    if text.isascii():  # most strings; no surrogate can hide in ASCII
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"string holds an unpaired surrogate ({text[exc.start]!a}), which is not valid Unicode"
    return None
