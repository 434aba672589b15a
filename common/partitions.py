"""Which of K router workers carries a sid's topic: a rule any client can compute.

A sid is 16 hex digits of farmhash64 (common/query/identity.py), already
uniform: its value modulo K spreads sids evenly over the partitions, needs
no table, and is the same in every process, language and restart.
"""

from __future__ import annotations


def partition_of(sid: str, partitions: int) -> int:
    """The partition (0 .. ``partitions``-1) of ``sid``; 0 when there is one."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    return int(sid, 16) % partitions


def router_urls(text: str) -> list[str]:
    """The router nodes' URLs of ``ESTROM_ROUTER_URL`` (comma-separated), in partition order."""
    return [u.strip() for u in text.split(",") if u.strip()]
