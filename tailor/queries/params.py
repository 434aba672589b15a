"""What a ``GET /api/v0.1/docs`` or ``/counts`` asks for, checked before anything is subscribed.

Pure: takes the decoded query arguments (``query_args``) and headers, returns
a TailRequest or raises BadParameter (HTTP 400) with a reason a person can act on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.web.http import Request

from common.contract import (
    INVALID_INDEX,
    INVALID_PARAMETER,
    INVALID_QUERY,
    MISSING_PARAMETER,
    WireError,
)
from common.query.identity import InvalidQuery, parse_query_param
from common.query.limits import QueryLimits, validate_query
from common.query.targets import canonical_target, target_problem

FORMAT_NAMES = ("json", "ndjson", "sse")


class BadParameter(ValueError):
    """A parameter is missing or unusable: ``error``, the contract's 400 it is answered with."""

    def __init__(self, error: WireError, reason: str) -> None:
        super().__init__(reason)
        self.error = error
        #: the JSON error code
        self.code = error.code
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


def query_args(request: Request) -> dict[str, list[str]]:
    """The query arguments, decoded (undecodable bytes become U+FFFD and fail validation)."""
    return {
        k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
        for k, vs in request.args.items()
    }


def _one(args: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise BadParameter(INVALID_PARAMETER, f"{name} given {len(values)} times; give it once")
    return values[0]


def _count(args: Mapping[str, Sequence[str]], name: str, maximum: int | None = None) -> int | None:
    raw = _one(args, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(INVALID_PARAMETER, f"{name} must be a whole number, got {raw!r}") from None
    if value < 0:
        raise BadParameter(INVALID_PARAMETER, f"{name} must not be negative, got {value}")
    if maximum is not None and value > maximum:
        raise BadParameter(INVALID_PARAMETER, f"{name} must be at most {maximum}, got {value}")
    return value


def _target(
    args: Mapping[str, Sequence[str]], limits: QueryLimits | None
) -> tuple[str | None, str | None, str | dict[str, Any] | None]:
    """(sid, index, query): either ``s=`` or ``i=`` and ``q=``, checked."""
    sid = _one(args, "s")
    index = _one(args, "i")
    raw_query = _one(args, "q")
    query: str | dict[str, Any] | None = None
    if sid is not None:
        if index is not None or raw_query is not None:
            raise BadParameter(INVALID_PARAMETER, "give either s=<sid> or i=<index>&q=<query>, not both")
        if not sid.strip():
            raise BadParameter(MISSING_PARAMETER, "s must not be empty")
    else:
        if index is None or raw_query is None:
            missing = " and ".join(n for n, v in (("i", index), ("q", raw_query)) if v is None)
            raise BadParameter(MISSING_PARAMETER, f"missing {missing}: give i=<index>&q=<query> or s=<sid>")
        problem = target_problem(index)  # a read target: patterns, lists, aliases (common/query/targets.py)
        if problem:
            raise BadParameter(INVALID_INDEX, problem)
        index = canonical_target(index)
        try:
            query = validate_query(parse_query_param(raw_query), limits or QueryLimits())
        except InvalidQuery as exc:
            raise BadParameter(INVALID_QUERY, str(exc)) from None
    return sid, index, query


def _seconds(args: Mapping[str, Sequence[str]], name: str) -> float | None:
    raw = _one(args, name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(INVALID_PARAMETER, f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise BadParameter(INVALID_PARAMETER, f"{name} must be a positive number, got {raw!r}")
    return value


def _format(args: Mapping[str, Sequence[str]], names: Sequence[str], default: str) -> str:
    fmt = _one(args, "format") or default
    if fmt not in names:
        raise BadParameter(INVALID_PARAMETER, f"format must be one of {', '.join(names)}, not {fmt!r}")
    return fmt


def parse_tail_request(
    args: Mapping[str, Sequence[str]],
    last_event_id: str | None = None,
    max_backfill: int = 10_000,
    limits: QueryLimits | None = None,
) -> TailRequest:
    """Validate the query arguments of a tail request (``Last-Event-ID`` header passed apart)."""
    sid, index, query = _target(args, limits)
    timeout = _seconds(args, "timeout")
    fmt = _format(args, FORMAT_NAMES, "json")
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


COUNT_FORMATS = ("ndjson", "sse")
#: Bounds of a count request: window length, top values, past period.
MIN_EVERY, MAX_EVERY = 0.1, 3600.0
MAX_K = 100
MAX_SINCE_WINDOWS = 10_000
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)?")


@dataclass(frozen=True)
class CountRequest:
    """A live count: the target, what to count by, the window, the past period."""

    index: str | None = None
    query: str | dict[str, Any] | None = None
    sid: str | None = None
    by: str | None = None
    k: int = 10
    every: float = 1.0
    since: float = 0.0
    format: str = "ndjson"
    limit: int | None = None
    timeout: float | None = None


def parse_duration(raw: str) -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``1d``, ``500ms`` as seconds; BadParameter otherwise."""
    found = _DURATION.fullmatch(raw.strip().lower())
    value = float(found[1]) * _UNITS[found[2] or "s"] if found else math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadParameter(
            INVALID_PARAMETER, f"since must be a positive duration such as 90s, 5m or 1h, got {raw!r}"
        )
    return value


def parse_count_request(args: Mapping[str, Sequence[str]], limits: QueryLimits | None = None) -> CountRequest:
    """Validate the query arguments of ``GET /api/v0.1/counts``."""
    sid, index, query = _target(args, limits)
    by = _one(args, "by")
    if by is not None:
        by = by.strip()
        if not by or any(not part for part in by.split(".")):
            raise BadParameter(INVALID_PARAMETER, f"by must be a field name (dotted for nested), got {by!r}")
    k = _count(args, "k", MAX_K)
    if k == 0:
        raise BadParameter(INVALID_PARAMETER, "k must be at least 1")
    every = _seconds(args, "every") or 1.0
    if not MIN_EVERY <= every <= MAX_EVERY or abs(every * 1000 - round(every * 1000)) > 1e-6:
        raise BadParameter(
            INVALID_PARAMETER,
            f"every must be between {MIN_EVERY:g} and {MAX_EVERY:g} seconds, in whole milliseconds",
        )
    raw_since = _one(args, "since")
    since = parse_duration(raw_since) if raw_since is not None else 0.0
    if since / every > MAX_SINCE_WINDOWS:
        raise BadParameter(
            INVALID_PARAMETER,
            f"since={raw_since} is {math.ceil(since / every)} windows of {every:g}s, "
            f"over the limit of {MAX_SINCE_WINDOWS}; use a longer every=",
        )
    return CountRequest(
        index=index,
        query=query,
        sid=sid,
        by=by,
        k=k or 10,
        every=every,
        since=since,
        format=_format(args, COUNT_FORMATS, "ndjson"),
        limit=_count(args, "limit"),
        timeout=_seconds(args, "timeout"),
    )
