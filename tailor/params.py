"""What a ``GET /api/v0.1/docs`` asks for, checked before anything is subscribed.

Pure: takes the decoded query arguments and headers, returns a TailRequest
or raises BadParameter (HTTP 400) with a reason a person can act on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common.indices import index_name_problem
from common.query.identity import InvalidQuery, parse_query_param
from common.query.limits import QueryLimits, validate_query

FORMAT_NAMES = ("json", "ndjson", "sse")


class BadParameter(ValueError):
    """A parameter is missing or unusable; ``code`` is the JSON error code."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class TailRequest:
    """One tail: either (index, query) to register, or an existing sid."""

    index: str | None = None
    query: str | dict[str, Any] | None = None
    sid: str | None = None
    limit: int | None = None
    timeout: float | None = None
    backfill: int = 0
    format: str = "json"
    last_event_id: str | None = None


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter("invalid_parameter", f"{name} given {len(values)} times; give it once")
    return values[0]


def _count(args: Mapping[str, Sequence[str]], name: str, maximum: int | None = None) -> int | None:
    raw = _one(args, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter("invalid_parameter", f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise BadParameter("invalid_parameter", f"{name} must not be negative, got {value}")
    if maximum is not None and value > maximum:
        raise BadParameter("invalid_parameter", f"{name} must be at most {maximum}, got {value}")
    return value


def parse_tail_request(
    args: Mapping[str, Sequence[str]],
    last_event_id: str | None = None,
    max_backfill: int = 10_000,
    limits: QueryLimits | None = None,
) -> TailRequest:
    """Validate the query arguments of a tail request (``Last-Event-ID`` header passed apart)."""
    sid = _one(args, "s")
    index = _one(args, "i")
    raw_query = _one(args, "q")
    query: str | dict[str, Any] | None = None
    if sid is not None:
        if index is not None or raw_query is not None:
            raise BadParameter("invalid_parameter", "give either s=<sid> or i=<index>&q=<query>, not both")
        if not sid.strip():
            raise BadParameter("missing_parameter", "s must not be empty")
    else:
        if index is None or raw_query is None:
            missing = " and ".join(n for n, v in (("i", index), ("q", raw_query)) if v is None)
            raise BadParameter("missing_parameter", f"missing {missing}: give i=<index>&q=<query> or s=<sid>")
        problem = index_name_problem(index)
        if problem:
            raise BadParameter("invalid_index", problem)
        try:
            query = validate_query(parse_query_param(raw_query), limits or QueryLimits())
        except InvalidQuery as exc:
            raise BadParameter("invalid_query", str(exc)) from None

    timeout: float | None = None
    raw_timeout = _one(args, "timeout")
    if raw_timeout is not None:
        try:
            timeout = float(raw_timeout)
        except ValueError:
            raise BadParameter(
                "invalid_parameter", f"timeout must be a number of seconds, got {raw_timeout!r}"
            ) from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise BadParameter("invalid_parameter", f"timeout must be a positive number, got {raw_timeout!r}")

    fmt = _one(args, "format") or "json"
    if fmt not in FORMAT_NAMES:
        raise BadParameter(
            "invalid_parameter", f"format must be one of {', '.join(FORMAT_NAMES)}, not {fmt!r}"
        )

    # EventSource polyfills that cannot set headers pass it as a parameter.
    resume = last_event_id or _one(args, "lastEventId")
    return TailRequest(
        index=index,
        query=query,
        sid=sid,
        limit=_count(args, "limit"),
        timeout=timeout,
        backfill=_count(args, "n", max_backfill) or 0,
        format=fmt,
        last_event_id=resume.strip() if resume and resume.strip() and fmt == "sse" else None,
    )
