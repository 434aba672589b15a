"""``estrom tail``: follow the tailor's JSON stream and print each hit as it arrives.

The stream is read with the recipe of docs/tailor-python-recipe.md: ijson is
handed the bytes that have arrived (``read1``), never a full buffer, so each
hit is printed the moment the tailor sends it.
"""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from collections.abc import Iterator
from typing import Any, TextIO

import ijson

from estrom_cli._http import CliError, open_stream, say

#: Longer than the tailor's 15 s heartbeat: a quiet stream never times out while the tailor is there.
READ_TIMEOUT = 60.0

_RESET = "\033[0m"
_DIM = "\033[2m"
_CYAN = "\033[36m"
_LEVEL_COLORS = {
    "error": "\033[31m",
    "err": "\033[31m",
    "fatal": "\033[1;31m",
    "critical": "\033[1;31m",
    "warn": "\033[33m",
    "warning": "\033[33m",
    "info": "\033[32m",
    "debug": "\033[2m",
}
_TIME_FIELD = "@timestamp"
_MESSAGE_FIELD = "message"
#: Fields shown by default, when a document has them, before any other.
_PREFERRED = ("level", "log.level", "severity", "service", "host", "host.name")
_DEFAULT_FIELD_COUNT = 3


class Arrived:
    """A reader for ijson that returns what has arrived, never waiting for more."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def read(self, size: int = -1) -> bytes:
        if size == 0:
            return b""  # ijson probes with read(0): consume nothing
        return self.response.read1(size if size > 0 else 65536)


def tail_path(index: str | None, query: str | None, sid: str | None, backfill: int, limit: int) -> str:
    params: dict[str, str] = {"s": sid} if sid else {"i": index or "", "q": query or ""}
    if backfill:
        params["n"] = str(backfill)
    if limit:
        params["limit"] = str(limit)
    return "/api/v0.1/docs?" + urllib.parse.urlencode(params)


def stream_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """``("sid", sid)``, then ``("hit", hit)`` per hit, then ``("error", reason)`` if the stream says so."""
    builder: ijson.ObjectBuilder | None = None
    error: dict[str, Any] = {}
    for prefix, event, value in ijson.parse(Arrived(response), use_float=True):
        if builder is not None:
            builder.event(event, value)
            if prefix == "hits.item" and event in ("end_map", "end_array"):
                yield "hit", builder.value
                builder = None
            continue
        if prefix == "hits.item" and event in ("start_map", "start_array"):
            builder = ijson.ObjectBuilder()
            builder.event(event, value)
        elif prefix == "subscription_id" and event == "string":
            yield "sid", value
        elif prefix in ("error", "reason") and event in ("string", "number"):
            error[prefix] = value
    if error:
        yield "error", ": ".join(str(error[k]) for k in ("error", "reason") if k in error)


def _lookup(source: dict[str, Any], path: str) -> Any:
    if path in source:
        return source[path]
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class LineFormat:
    """A hit as one compact line: time, a few ``field=value``, the message."""

    def __init__(self, fields: list[str] | None, color: bool) -> None:
        self.fields = fields
        self.color = color

    def _paint(self, code: str, text: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and code else text

    def _default_fields(self, source: dict[str, Any]) -> list[str]:
        chosen = [
            f for f in _PREFERRED if _lookup(source, f) is not None and not isinstance(source.get(f), dict)
        ]
        for key, value in source.items():
            if len(chosen) >= _DEFAULT_FIELD_COUNT:
                break
            if (
                key not in chosen
                and key not in (_TIME_FIELD, _MESSAGE_FIELD)
                and not isinstance(value, dict | list)
            ):
                chosen.append(key)
        return chosen[:_DEFAULT_FIELD_COUNT]

    def __call__(self, hit: dict[str, Any]) -> str:
        source = hit.get("_source", {})
        if not isinstance(source, dict):
            return json.dumps(hit)
        parts: list[str] = []
        timestamp = source.get(_TIME_FIELD)
        if timestamp is not None:
            parts.append(self._paint(_DIM, _scalar(timestamp)))
        names = self.fields if self.fields is not None else self._default_fields(source)
        for name in names:
            value = _lookup(source, name)
            if value is None:
                continue
            text = _scalar(value)
            color = _LEVEL_COLORS.get(text.lower(), "") if "level" in name or name == "severity" else ""
            parts.append(f"{self._paint(_CYAN, name)}={self._paint(color, text)}")
        message = source.get(_MESSAGE_FIELD)
        if message is not None:
            parts.append(_scalar(message))
        elif self.fields is None:
            rest = {k: v for k, v in source.items() if k != _TIME_FIELD and k not in names}
            if rest:
                parts.append(self._paint(_DIM, json.dumps(rest, ensure_ascii=False, separators=(",", ":"))))
        return "  ".join(parts)


def run_tail(
    tailor: str,
    index: str | None,
    query: str | None,
    sid: str | None,
    *,
    as_json: bool,
    fields: list[str] | None,
    backfill: int,
    limit: int,
    color: bool,
    quiet: bool,
    out: TextIO,
    token: str = "",
) -> int:
    path = tail_path(index, query, sid, backfill, limit)
    conn, response = open_stream(
        tailor, path, accept="application/json", token=token, timeout=READ_TIMEOUT, what="tail"
    )
    render = (lambda hit: json.dumps(hit, ensure_ascii=False)) if as_json else LineFormat(fields, color)
    try:
        for kind, value in stream_events(response):
            if kind == "sid":
                if not quiet:
                    say(f"following {value} on {tailor} (Ctrl-C to stop)")
            elif kind == "hit":
                out.write(render(value) + "\n")
                out.flush()
            else:
                raise CliError(f"the tailor ended the stream: {value}")
    except TimeoutError:
        raise CliError(
            f"the tailor at {tailor} stopped answering (no heartbeat for {READ_TIMEOUT:g} s)"
        ) from None
    except (OSError, http.client.HTTPException, ijson.JSONError) as exc:
        raise CliError(f"the stream from {tailor} broke off: {exc}") from None
    finally:
        conn.close()
    return 0


def stdout_wants_color(mode: str, no_color: bool) -> bool:
    """``--color``: always, never, or auto (a terminal, unless NO_COLOR says no: ``CliSettings.no_color``)."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return sys.stdout.isatty() and not no_color
