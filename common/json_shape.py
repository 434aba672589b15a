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


def inspect(value: Any, max_depth: int) -> tuple[int, str | None]:
    """Nesting depth (counted up to ``max_depth + 1``) and the first value problem, in one walk.

    Levels of objects and arrays: a scalar is 0, ``{}`` is 1. A value problem
    is why the value cannot be passed on as JSON to the engine. Level by
    level rather than node by node: it runs for every ingested document, and
    list extends cost a fraction of a tuple per node.
    """
    depth = 0
    problem: str | None = None
    level: list[Any] = [value]
    while level:
        below: list[Any] = []
        containers = False
        for node in level:
            if isinstance(node, dict):
                containers = True
                for key in node if problem is None else ():
                    problem = _string_problem(key)
                    if problem:
                        break
                below.extend(node.values())
            elif isinstance(node, list):
                containers = True
                below.extend(node)
            elif problem is None:
                if isinstance(node, str):
                    problem = _string_problem(node)
                elif isinstance(node, float) and not math.isfinite(node):
                    problem = f"number {node} is out of range (JSON numbers must be finite doubles)"
        if containers:
            depth += 1
            if depth > max_depth:
                break
        level = below
    return depth, problem


def _string_problem(text: str) -> str | None:
    if text.isascii():  # most strings; no surrogate can hide in ASCII
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"string holds an unpaired surrogate ({text[exc.start]!a}), which is not valid Unicode"
    return None
