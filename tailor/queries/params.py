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
#: What ``delay=`` orders by unless ``order_by=`` says otherwise.
ORDER_BY = "@timestamp"
#: The most patterns one ``fields=`` may list.
MAX_FIELDS = 100
#: A field pattern: dotted segments of anything but ``,`` and ``.``, ``*`` anywhere.
_FIELD_PATTERN = re.compile(r"[^.,\s]+(\.[^.,\s]+)*")


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
    #: only these fields of each hit's ``_source`` (dotted paths, ``*`` wildcards); None: all
    fields: tuple[str, ...] | None = None
    #: seconds hits are held to be released in ``order_by`` order (0: as they arrive)
    delay: float = 0.0
    #: the field whose value orders held hits (with ``delay``)
    order_by: str = ORDER_BY
    #: hits per second above which hits are sampled (None: never sampled)
    max_rate: int | None = None

    @property
    def shaped(self) -> bool:
        """Whether the hits are shaped for this tail (fields, delay, sampling), not sent as they come."""
        return self.fields is not None or self.delay > 0 or self.max_rate is not None


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
    max_delay: float = 10.0,
) -> TailRequest:
    """Validate the query arguments of a tail request (``Last-Event-ID`` header passed apart)."""
    sid, index, query = _target(args, limits)
    delay = _delay(args, max_delay)
    order_by = _one(args, "order_by")
    if order_by is not None and not delay:
        raise BadParameter(INVALID_PARAMETER, "order_by orders the hits a delay holds: give delay= with it")
    max_rate = _count(args, "max_rate")
    if max_rate == 0:
        raise BadParameter(INVALID_PARAMETER, "max_rate must be at least 1 hit per second")
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
        fields=_fields(args),
        delay=delay,
        order_by=_field_name(order_by, "order_by") if order_by is not None else ORDER_BY,
        max_rate=max_rate,
    )


def _field_name(raw: str, name: str) -> str:
    """One field name (dotted for nested), as ``by=`` and ``order_by=`` take it."""
    field = raw.strip()
    if not field or any(not part for part in field.split(".")):
        raise BadParameter(INVALID_PARAMETER, f"{name} must be a field name (dotted for nested), got {raw!r}")
    return field


def _fields(args: Mapping[str, Sequence[str]]) -> tuple[str, ...] | None:
    """``fields=a,b.c,d*``: the patterns, each checked; None when not given."""
    raw = _one(args, "fields")
    if raw is None:
        return None
    patterns = tuple(p.strip() for p in raw.split(","))
    if not raw.strip() or len(patterns) > MAX_FIELDS:
        raise BadParameter(INVALID_PARAMETER, f"fields must list 1 to {MAX_FIELDS} field names, got {raw!r}")
    for pattern in patterns:
        if not _FIELD_PATTERN.fullmatch(pattern):
            raise BadParameter(
                INVALID_PARAMETER,
                f"fields: {pattern!r} is not a field name or pattern (dotted paths such as a.b, "
                "* as a wildcard, separated by commas)",
            )
    return tuple(dict.fromkeys(patterns))


def _delay(args: Mapping[str, Sequence[str]], max_delay: float) -> float:
    """``delay=<duration>`` in seconds, at most ``max_delay`` (``ESTROM_TAILOR_MAX_DELAY``); 0 if not given."""
    raw = _one(args, "delay")
    if raw is None or raw.strip() in ("0", "0s", "0ms"):
        return 0.0
    delay = parse_duration(raw, "delay")
    if delay > max_delay:
        raise BadParameter(
            INVALID_PARAMETER,
            f"delay={raw} is over this tailor's limit of {max_delay:g}s (ESTROM_TAILOR_MAX_DELAY)",
        )
    return delay


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
    #: seconds each window stays open for late hits, counted by their ``@timestamp`` (0: by arrival)
    delay: float = 0.0


def parse_duration(raw: str, name: str = "since") -> float:
    """``90``, ``90s``, ``5m``, ``1h``, ``1d``, ``500ms`` as seconds; BadParameter (naming ``name``) otherwise."""
    found = _DURATION.fullmatch(raw.strip().lower())
    value = float(found[1]) * _UNITS[found[2] or "s"] if found else math.nan
    if not math.isfinite(value) or value <= 0:
        raise BadParameter(
            INVALID_PARAMETER, f"{name} must be a positive duration such as 500ms, 90s, 5m or 1h, got {raw!r}"
        )
    return value


def parse_count_request(
    args: Mapping[str, Sequence[str]], limits: QueryLimits | None = None, max_delay: float = 10.0
) -> CountRequest:
    """Validate the query arguments of ``GET /api/v0.1/counts``."""
    sid, index, query = _target(args, limits)
    by = _one(args, "by")
    if by is not None:
        by = _field_name(by, "by")
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
        delay=_delay(args, max_delay),
    )
