"""Wire framing of a tail: the bytes of JSON, NDJSON and SSE streams.

Pure functions of their inputs, so every shape the contract promises is unit
tested without a socket. A stream is ``opening`` + ``hit``... + ``closing``,
with ``heartbeat`` whenever it has been quiet; every prefix of the JSON form
is a prefix of one valid JSON document, so incremental parsers read it live.
A tail that samples (``max_rate=``) also gets a ``sampled`` report per second
it left hits out, in each format's one in-band place for it.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from common.hits import Hit


def _dumps(value: Any) -> str:
    # No newlines ever: NDJSON and SSE ``data:`` need one line per value.
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


class EncodedHit(dict[str, Any]):
    """A live hit that keeps its JSON: encoded once for every client of its sid, whatever their format."""

    __slots__ = ("_json",)

    def json(self) -> bytes:
        try:
            return self._json
        except AttributeError:
            self._json: bytes = _dumps(self).encode()
            return self._json


def hit_json(hit: Hit) -> bytes:
    """The UTF-8 JSON of a hit (one line), encoded once if it is an EncodedHit."""
    return hit.json() if isinstance(hit, EncodedHit) else _dumps(hit).encode()


class Framing(Protocol):
    """How one stream format spells the parts of a tail."""

    content_type: bytes
    #: Whether the format can say "hits may be missing here" (NDJSON, SSE).
    gaps: bool

    def opening(self, sid: str) -> bytes: ...

    def hit(self, hit: Hit, event_id: str, first: bool) -> bytes: ...

    def gap(self, info: dict[str, Any]) -> bytes: ...

    def sampled(self, report: dict[str, Any], first: bool) -> bytes:
        """A second of a sampled tail: ``{"t": ..., "matched": n, "sent": k}``."""
        ...

    def heartbeat(self) -> bytes: ...

    def closing(self, end: str, error: str | None = None, reason: str | None = None) -> bytes: ...


class JsonFraming:
    """``{"subscription_id": "<sid>", "hits": [hit, hit, ...]}``, closed on limit/timeout/error.

    Each hit goes on its own line (``curl -N`` shows one hit per line); the
    separating comma comes *before* a hit, so the bytes sent so far never end
    in a dangling comma and any of them can be followed by the closing. A
    sampled second is an element of the array too, ``{"sampled": {...}}``:
    the only place a JSON document has for something said along the way.
    """

    content_type = b"application/json"
    gaps = False

    def opening(self, sid: str) -> bytes:
        return f'{{"subscription_id": {_dumps(sid)}, "hits": ['.encode()

    def hit(self, hit: Hit, event_id: str, first: bool) -> bytes:
        return (b"\n" if first else b",\n") + hit_json(hit)

    def gap(self, info: dict[str, Any]) -> bytes:
        return b""  # a JSON document has no place for one: it ends with an "error" instead

    def sampled(self, report: dict[str, Any], first: bool) -> bytes:
        return (b"\n" if first else b",\n") + _dumps({"sampled": report}).encode()

    def heartbeat(self) -> bytes:
        return b"\n"

    def closing(self, end: str, error: str | None = None, reason: str | None = None) -> bytes:
        if error is None:
            return b"\n]}\n"
        return f'\n], "error": {_dumps(error)}, "reason": {_dumps(reason or "")}}}\n'.encode()


class NdjsonFraming:
    """First line ``{"subscription_id": ...}``, then one hit per line.

    A back-end failure or a dropped reader ends with one more line,
    ``{"error": code, "reason": text}``; heartbeats are empty lines; where
    hits may be missing (router lost and back) a line ``{"gap": {...}}``; a
    sampled second, a line ``{"sampled": {...}}``.
    """

    content_type = b"application/x-ndjson"
    gaps = True

    def opening(self, sid: str) -> bytes:
        return (_dumps({"subscription_id": sid}) + "\n").encode()

    def hit(self, hit: Hit, event_id: str, first: bool) -> bytes:
        return hit_json(hit) + b"\n"

    def gap(self, info: dict[str, Any]) -> bytes:
        return (_dumps({"gap": info}) + "\n").encode()

    def sampled(self, report: dict[str, Any], first: bool) -> bytes:
        return (_dumps({"sampled": report}) + "\n").encode()

    def heartbeat(self) -> bytes:
        return b"\n"

    def closing(self, end: str, error: str | None = None, reason: str | None = None) -> bytes:
        if error is None:
            return b""
        return (_dumps({"error": error, "reason": reason or ""}) + "\n").encode()


class SseFraming:
    """``text/event-stream`` for browsers' EventSource.

    ``event: subscription`` first (no id, so it never moves Last-Event-ID),
    then ``event: hit`` with ``id: <epoch>:<seq>``; ``event: gap`` when a
    resume cannot be complete; ``event: sampled`` (no id) for a sampled
    second; ``event: end`` before the server closes (on limit, timeout or
    error: the page should ``close()`` its EventSource, which otherwise
    reconnects). Heartbeats are comment lines.
    """

    content_type = b"text/event-stream"
    gaps = True

    def __init__(self, retry_ms: int = 2000) -> None:
        self.retry_ms = retry_ms

    def opening(self, sid: str) -> bytes:
        data = _dumps({"subscription_id": sid})
        return f"retry: {self.retry_ms}\nevent: subscription\ndata: {data}\n\n".encode()

    def hit(self, hit: Hit, event_id: str, first: bool) -> bytes:
        return b"event: hit\nid: " + event_id.encode() + b"\ndata: " + hit_json(hit) + b"\n\n"

    def gap(self, info: dict[str, Any]) -> bytes:
        return f"event: gap\ndata: {_dumps(info)}\n\n".encode()

    def sampled(self, report: dict[str, Any], first: bool) -> bytes:
        return f"event: sampled\ndata: {_dumps(report)}\n\n".encode()

    def heartbeat(self) -> bytes:
        return b": heartbeat\n\n"

    def closing(self, end: str, error: str | None = None, reason: str | None = None) -> bytes:
        body: dict[str, Any] = {"end": end}
        if error is not None:
            body.update(error=error, reason=reason or "")
        return f"event: end\ndata: {_dumps(body)}\n\n".encode()


FORMATS: dict[str, type[JsonFraming] | type[NdjsonFraming] | type[SseFraming]] = {
    "json": JsonFraming,
    "ndjson": NdjsonFraming,
    "sse": SseFraming,
}


def framing_for(name: str) -> Framing:
    """The framing of a ``format=`` value (already validated)."""
    return FORMATS[name]()


class CountFraming(Protocol):
    """How one count stream format spells its parts (``GET /api/v0.1/counts``)."""

    content_type: bytes

    def opening(self, sid: str) -> bytes: ...

    def frame(self, frame: dict[str, Any]) -> bytes: ...

    def gap(self, info: dict[str, Any]) -> bytes: ...

    def heartbeat(self) -> bytes: ...

    def closing(self, end: str, error: str | None = None, reason: str | None = None) -> bytes: ...


class NdjsonCountFraming:
    """First line ``{"subscription_id": ...}``, then one frame per line; errors and gaps as for tails."""

    content_type = b"application/x-ndjson"

    def opening(self, sid: str) -> bytes:
        return (_dumps({"subscription_id": sid}) + "\n").encode()

    def frame(self, frame: dict[str, Any]) -> bytes:
        return (_dumps(frame) + "\n").encode()

    gap = NdjsonFraming.gap
    heartbeat = NdjsonFraming.heartbeat
    closing = NdjsonFraming.closing


class SseCountFraming(SseFraming):
    """``event: subscription``, then ``event: count`` per window (no ids: counts do not resume)."""

    def frame(self, frame: dict[str, Any]) -> bytes:
        return f"event: count\ndata: {_dumps(frame)}\n\n".encode()


def count_framing_for(name: str) -> CountFraming:
    """The framing of a counts ``format=`` value (already validated)."""
    return SseCountFraming() if name == "sse" else NdjsonCountFraming()
