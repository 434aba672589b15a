"""A streaming tail client for tests: reads a tailor response on a thread.

Bytes are read with ``read1`` (whatever has arrived, never waiting for a
full buffer) and parsed as they come, per format: JSON with ijson's push
interface (``hits.item``), NDJSON line by line, SSE event by event. Tests
wait on hits, events and the end of the stream with bounded timeouts.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

import ijson


def docs_path(params: dict[str, Any], endpoint: str = "/api/v0.1/docs") -> str:
    return (
        endpoint
        + "?"
        + urllib.parse.urlencode(
            {k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in params.items()}
        )
    )


class SseEvent(dict):
    """One server-sent event: ``event``, ``id``, ``data`` (raw text)."""

    @property
    def json(self) -> Any:
        return json.loads(self["data"])


def parse_sse(text: str) -> list[SseEvent]:
    """Events of a complete ``text/event-stream`` text, as a browser would see them."""
    events: list[SseEvent] = []
    current: dict[str, Any] = {}
    data: list[str] = []
    for line in text.split("\n"):
        if line == "":
            if data or current:
                events.append(
                    SseEvent(
                        event=current.get("event", "message"), id=current.get("id"), data="\n".join(data)
                    )
                )
            current, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        else:
            current[name] = value
    return events


class Tail:
    """One open ``GET /api/v0.1/docs`` and what has arrived so far."""

    def __init__(
        self,
        base_url: str,
        params: dict[str, Any],
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        endpoint: str = "/api/v0.1/docs",
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        self.conn.request("GET", docs_path(params, endpoint), headers=headers or {})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.format = str(params.get("format", "json" if endpoint.endswith("/docs") else "ndjson"))
        self.raw = bytearray()
        self.hits: list[Any] = []
        self.events: list[SseEvent] = []
        self.lines: list[Any] = []
        self.ended = False
        self.error: BaseException | None = None
        self._cond = threading.Condition()
        if self.status != 200:
            self.body = self.response.read()
            self.ended = True
            return
        self._thread = threading.Thread(target=self._read, daemon=True, name="tail-reader")
        self._thread.start()

    def json_body(self) -> Any:
        return json.loads(self.body)

    def _read(self) -> None:
        items = ijson.sendable_list()
        coro = ijson.items_coro(items, "hits.item", use_float=True) if self.format == "json" else None
        text_buffer = ""
        try:
            while True:
                chunk = self.response.read1(65536)
                if not chunk:
                    break
                with self._cond:
                    self.raw.extend(chunk)
                    if coro is not None:
                        coro.send(chunk)
                        self.hits.extend(items)
                        del items[:]
                    else:
                        text_buffer += chunk.decode()
                        text_buffer = self._parse_text(text_buffer)
                    self._cond.notify_all()
        except BaseException as exc:  # reported to the waiting test
            with self._cond:
                self.error = exc
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def _parse_text(self, buffer: str) -> str:
        if self.format == "ndjson":
            *complete, rest = buffer.split("\n")
            for line in complete:
                if line.strip():
                    value = json.loads(line)
                    self.lines.append(value)
                    if "_source" in value:
                        self.hits.append(value)
            return rest
        *complete, rest = buffer.split("\n\n")
        for block in complete:
            for event in parse_sse(block + "\n\n"):
                self.events.append(event)
                if event["event"] == "hit":
                    self.hits.append(event.json)
        return rest

    def wait(self, predicate: Callable[[Tail], bool], timeout: float = 20.0, what: str = "condition") -> None:
        with self._cond:
            self._cond.wait_for(lambda: predicate(self) or self.ended, timeout)
            if predicate(self):
                return
        if self.status != 200:
            raise AssertionError(f"{what}: the tail was refused, {self.status}: {self.body[:2000]!r}")
        raise AssertionError(
            f"{what} not met within {timeout}s (ended={self.ended}, error={self.error!r}); "
            f"received: {bytes(self.raw)[-2000:]!r}"
        )

    def wait_hits(self, n: int, timeout: float = 20.0) -> list[Any]:
        self.wait(lambda t: len(t.hits) >= n, timeout, f"{n} hits")
        with self._cond:
            return list(self.hits)

    def wait_end(self, timeout: float = 20.0) -> bytes:
        self.wait(lambda t: t.ended, timeout, "end of stream")
        return bytes(self.raw)

    def document(self) -> Any:
        """The whole JSON body, once the stream ended."""
        return json.loads(self.wait_end())

    def sampled(self) -> list[dict[str, Any]]:
        """The ``sampled`` reports of a ``max_rate=`` tail so far, whatever the format."""
        with self._cond:
            if self.format == "sse":
                return [e.json for e in self.events if e["event"] == "sampled"]
            items = self.hits if self.format == "json" else self.lines
            return [item["sampled"] for item in items if isinstance(item, dict) and "sampled" in item]

    def documents(self) -> list[Any]:
        """The hits so far, without the ``sampled`` reports that a JSON tail's array also holds."""
        with self._cond:
            return [h for h in self.hits if not (isinstance(h, dict) and "sampled" in h)]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            sock = self.conn.sock
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
