"""What the router-tier tests share: a query in each partition, and what a tail of one received."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from common.partitions import partition_of
from tests.faults.delivery import numbers
from tests.tailor.tail_client import Tail


def one_query_per_partition(register: Callable[[str], str], run: str) -> list[tuple[int, str]]:
    """``(part, sid)`` of a query ``run:<run> AND part:<part>`` in partition 0, then one in 1 (of 2);
    ``register(query)`` registers a query and answers its sid."""
    found: dict[int, tuple[int, str]] = {}
    for part in range(64):
        sid = register(f"run:{run} AND part:{part}")
        found.setdefault(partition_of(sid, 2), (part, sid))
        if len(found) == 2:
            return [found[0], found[1]]
    raise AssertionError(f"64 queries, all in partition {list(found)}")


def hit_numbers(tail: Tail) -> list[int]:
    """The ``n`` of every hit an NDJSON tail received, in order."""
    return numbers(line for line in tail.lines if "_source" in line)


def gaps(tail: Tail) -> list[Any]:
    """The gap notices an NDJSON tail received."""
    return [line["gap"] for line in tail.lines if "gap" in line]
