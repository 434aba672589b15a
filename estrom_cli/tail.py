"""``estrom tail``: follow the tailor's JSON stream and print each hit as it arrives.

The stream is read with the recipe of docs/tailor-python-recipe.md: ijson is
handed the bytes that have arrived (``read1``), never a full buffer, so each
hit is printed the moment the tailor sends it.

What the tail asks the tailor to shape (``fields=``, ``delay=``, ``max_rate=``)
comes back in-band: a hit released after a newer one carries ``"_late": true``
(a ``late`` marker on its line); a sampled second is an element
``{"sampled": {"t", "matched", "sent"}}`` of the hits array (a dim status line
on stderr; with ``--json``, passed through as one more JSON line).
"""

from __future__ import annotations

import http.client
import json
import re
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any, TextIO

import ijson

from estrom_cli._http import CliError, open_stream, say

#: Longer than the tailor's 15 s heartbeat: a quiet stream never times out while the tailor is there.
READ_TIMEOUT = 60.0

_RESET = "\033[0m"
_DIM = "\033[2m"
_CYAN = "\033[36m"
_YELLOW = "\033[33m"
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


@dataclass(frozen=True)
class TailAsk:
    """What a tail asks the tailor: built once from the command line."""

    index: str | None
    query: str | None
    sid: str | None
    _: KW_ONLY
    backfill: int = 0
    limit: int = 0
    #: hits printed as they came (``--json``), not as lines: what is asked for follows
    as_json: bool = False
    #: the fields the user chose (dotted paths, ``*`` patterns); None: whole documents, columns guessed
    fields: tuple[str, ...] | None = None
    #: held this long (the tailor's duration syntax: ``500ms``, ``5s``) and released in order
    delay: str | None = None
    #: with ``delay``: the field that orders (the tailor's default: ``@timestamp``)
    order_by: str | None = None
    #: hits per second above which the tailor samples
    max_rate: int | None = None

    def wire_fields(self) -> tuple[str, ...] | None:
        """``fields=`` for the chosen columns: a line also shows the time and the message, so it
        asks for them too; ``--json`` prints hits as they came, so exactly what was chosen."""
        if self.fields is None or self.as_json:
            return self.fields
        return tuple(dict.fromkeys((*self.fields, _TIME_FIELD, _MESSAGE_FIELD)))

    def path(self) -> str:
        """The tail request's path and query string."""
        params: dict[str, str] = (
            {"s": self.sid} if self.sid else {"i": self.index or "", "q": self.query or ""}
        )
        if self.backfill:
            params["n"] = str(self.backfill)
        if self.limit:
            params["limit"] = str(self.limit)
        fields = self.wire_fields()
        if fields:
            params["fields"] = ",".join(fields)
        if self.delay:
            params["delay"] = self.delay
            if self.order_by:
                params["order_by"] = self.order_by
        if self.max_rate is not None:
            params["max_rate"] = str(self.max_rate)
        return "/api/v0.1/docs?" + urllib.parse.urlencode(params, safe=",*@")


def stream_events(response: http.client.HTTPResponse) -> Iterator[tuple[str, Any]]:
    """``("sid", sid)``, then ``("hit", hit)`` per hit and ``("sampled", element)`` per sampled
    second (``{"sampled": {...}}`` as it came), then ``("error", reason)`` if the stream says so."""
    builder: ijson.ObjectBuilder | None = None
    error: dict[str, Any] = {}
    for prefix, event, value in ijson.parse(Arrived(response), use_float=True):
        if builder is not None:
            builder.event(event, value)
            if prefix == "hits.item" and event in ("end_map", "end_array"):
                yield ("sampled" if is_sampled(builder.value) else "hit"), builder.value
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


def is_sampled(item: Any) -> bool:
    """A sampled second's element among the hits: ``{"sampled": {...}}``, never a hit's shape."""
    return isinstance(item, dict) and isinstance(item.get("sampled"), dict) and "_source" not in item


def sampled_line(frame: dict[str, Any]) -> str:
    """A sampled second for a person: ``sampled: 100 of 2345 in 2026-12-01T11:09:00Z``."""
    return f"sampled: {frame.get('sent')} of {frame.get('matched')} in {frame.get('t')}"


def _leaves(source: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every value that is not an object, by its dotted path."""
    for key, value in source.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _columns(source: dict[str, Any], names: list[str]) -> Iterator[tuple[str, Any]]:
    """``(name, value)`` per chosen field; a ``*`` pattern (as ``fields=`` takes it: any run of
    characters, dots included) stands for each field it matches but the time and the message."""
    for name in names:
        if "*" not in name:
            yield name, _lookup(source, name)
            continue
        pattern = re.compile(".*".join(map(re.escape, name.split("*"))))
        for path, value in _leaves(source):
            if pattern.fullmatch(path) and path not in (_TIME_FIELD, _MESSAGE_FIELD):
                yield path, value


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
        if hit.get("_late") is True:  # released after a newer hit (delay=): out of order
            parts.append(self._paint(_YELLOW, "late"))
        names = self.fields if self.fields is not None else self._default_fields(source)
        for name, value in _columns(source, names):
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
    ask: TailAsk,
    *,
    color: bool,
    quiet: bool,
    out: TextIO,
    err: TextIO | None = None,
    token: str = "",
) -> int:
    conn, response = open_stream(
        tailor, ask.path(), accept="application/json", token=token, timeout=READ_TIMEOUT, what="tail"
    )
    as_json = ask.as_json
    fields = list(ask.fields) if ask.fields is not None else None
    render = (lambda hit: json.dumps(hit, ensure_ascii=False)) if as_json else LineFormat(fields, color)
    err = err or sys.stderr  # the status lines' stream: stderr as it is when the tail runs
    dim_status = color and err.isatty()
    try:
        for kind, value in stream_events(response):
            if kind == "sid":
                if not quiet:
                    say(f"following {value} on {tailor} (Ctrl-C to stop)")
            elif kind == "hit" or (kind == "sampled" and as_json):
                out.write(render(value) + "\n")
                out.flush()
            elif kind == "sampled":
                out.flush()  # the status follows the lines printed before it
                line = sampled_line(value["sampled"])
                err.write((f"{_DIM}{line}{_RESET}" if dim_status else line) + "\n")
                err.flush()
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
