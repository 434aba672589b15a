"""What the engine's refusals of a percolation mean: a shard not started yet, a document it cannot parse."""

from __future__ import annotations

from typing import Any

from common.engine import TRANSPORT_ERRORS, EngineUnavailable

#: Shard failures that mean "this shard copy is not started yet", not "the engine is failing".
_NOT_STARTED = frozenset(
    {"no_shard_available_action_exception", "unavailable_shards_exception", "shard_not_found_exception"}
)


class ShardsNotStarted(EngineUnavailable):
    """A search found the percolator index but not one started shard copy of it."""


def shards_not_started(status: int, error: Any) -> bool:
    """Whether an engine error says the index's shards are not started yet (worth a health wait).

    Judged by the engine's status and error types, never its words: an
    index created a moment ago answers ``503 search_phase_execution_exception``
    with no shard failure at all (no copy was there to try) or only
    "no shard available" ones. An overloaded engine says "all shards failed"
    too, but with 429 (``es_rejected_execution_exception``) or with failures
    of other types: waiting for health and re-running the batch would only
    add load to an engine that is already failing.
    """
    if status != 503 or not isinstance(error, dict):
        return False
    if error.get("type") in _NOT_STARTED:
        return True
    if error.get("type") != "search_phase_execution_exception":
        return False
    failures = error.get("failed_shards") or []
    causes = [f.get("reason") for f in failures if isinstance(f, dict)] or error.get("root_cause") or []
    return all(isinstance(c, dict) and c.get("type") in _NOT_STARTED for c in causes)


def not_started(exc: EngineUnavailable) -> bool:
    """Whether a failed engine call is the not-started case (see shards_not_started)."""
    if isinstance(exc, ShardsNotStarted):
        return True
    cause = exc.__cause__
    if not isinstance(cause, TRANSPORT_ERRORS) or not isinstance(cause.status_code, int):
        return False
    info = cause.info if isinstance(cause.info, dict) else {}
    return shards_not_started(cause.status_code, info.get("error"))


def refused_by_a_shard(resp: dict[str, Any]) -> str | None:
    """Why a shard could not parse the percolated document(s), if one could not.

    A search over several shared indices where one of them cannot parse a
    document (a shape it maps otherwise, or past its field limit) answers
    with the other indices' matches and a shard failure: that document is
    refused all the same, so that it is retried as a refused one is.
    """
    for failure in (resp.get("_shards") or {}).get("failures") or []:
        reason = failure.get("reason") if isinstance(failure, dict) else None
        if isinstance(reason, dict) and reason.get("type") == "query_shard_exception":
            return item_reason({"error": reason})
    return None


def item_reason(item: dict[str, Any]) -> str:
    error = item.get("error")
    if isinstance(error, dict):
        node = error
        while isinstance(node.get("caused_by"), dict):
            node = node["caused_by"]
        return str(node.get("reason") or error.get("reason") or error.get("type") or "engine error")
    return str(error)
