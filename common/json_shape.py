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
    """Levels of objects and arrays (a scalar is 0, ``{}`` is 1); stops counting past ``stop_above``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest > stop_above:
                return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def value_problem(value: Any) -> str | None:
    """Why a decoded JSON value cannot be passed on as JSON to the engine, or None."""
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                problem = _string_problem(key)
                if problem:
                    return problem
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            problem = _string_problem(node)
            if problem:
                return problem
        elif isinstance(node, float) and not math.isfinite(node):
            return f"number {node} is out of range (JSON numbers must be finite doubles)"
    return None


def _string_problem(text: str) -> str | None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"string holds an unpaired surrogate ({text[exc.start]!a}), which is not valid Unicode"
    return None
