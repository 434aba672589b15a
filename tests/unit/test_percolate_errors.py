"""Which engine errors earn the percolator a health wait and a re-run.

The bodies are the engine's own (Elasticsearch 7.17): a search on an index
whose shard is not started yet, and searches on an overloaded engine. The old
rule, the word "shard" anywhere in the error text, retried all of them.
"""

from __future__ import annotations

import pytest

from beater.matching.refusals import shards_not_started

NOT_STARTED = {
    "root_cause": [],
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "phase": "query",
    "grouped": True,
    "failed_shards": [],
}
NO_COPY = {
    "root_cause": [{"type": "no_shard_available_action_exception", "reason": None}],
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "failed_shards": [
        {"shard": 0, "index": "estrom-queries-x", "reason": {"type": "no_shard_available_action_exception"}}
    ],
}
REJECTED = {
    "root_cause": [{"type": "es_rejected_execution_exception", "reason": "rejected execution of ..."}],
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "failed_shards": [
        {"shard": 0, "index": "estrom-queries-x", "reason": {"type": "es_rejected_execution_exception"}}
    ],
}
BREAKER = {
    "root_cause": [{"type": "circuit_breaking_exception", "reason": "[parent] Data too large"}],
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "failed_shards": [{"shard": 0, "reason": {"type": "circuit_breaking_exception"}}],
}
MIXED = {
    "type": "search_phase_execution_exception",
    "reason": "all shards failed",
    "failed_shards": [
        {"shard": 0, "reason": {"type": "no_shard_available_action_exception"}},
        {"shard": 1, "reason": {"type": "es_rejected_execution_exception"}},
    ],
}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, NOT_STARTED),
        (503, NO_COPY),
        (503, {"type": "unavailable_shards_exception", "reason": "[x][0] primary shard is not active"}),
    ],
)
def test_shards_not_started_waits_for_health(status: int, error: dict) -> None:
    assert shards_not_started(status, error)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, REJECTED),  # overload: "all shards failed" with 429
        (503, REJECTED),
        (429, BREAKER),
        (503, BREAKER),
        (503, MIXED),
        (500, NOT_STARTED),
        (503, {"type": "master_not_discovered_exception", "reason": "no shard ... anywhere"}),
        (503, "all shards failed"),
        (503, None),
    ],
)
def test_overload_and_other_failures_do_not(status: int, error: object) -> None:
    assert not shards_not_started(status, error)
