"""One HTTP tail of a tailor as a bare asyncio ``Protocol``: what it read, and how its stream ended.

No HTTP library and no JSON parsing, so that a thousand of them cost the
client process little. The documents the benchmark ingests carry a unique
``"swarm_seq": <n>`` member; a tail finds those numbers with one regular
expression per read and records them in a bitmap, which is enough to say,
per client, how many hits arrived, which sequence numbers are missing and
which came twice. Each hit of the JSON framing starts on its own line (and
chunked transfer framing never splits one, as the tailor writes each hit
with one ``write``), so a read is parsed up to its last newline and the rest
kept for the next one.

Reader behaviours: ``fast`` reads everything at once; ``slow`` reads at a
limited byte rate (pausing the transport; ``bench/tail_swarm.py`` gives it
a small socket receive buffer so the kernel does not absorb the backlog);
``stalled`` stops reading once its stream has started. ``read_freely``
lets a slow or stalled one read the rest, to see how the tailor ended each
stream: ``open`` (still streaming), ``closed`` (a proper ``]}``), an error
code from the closing ``"error"`` member (``slow_reader`` when dropped), or
``eof`` / ``reset`` without a closing.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

#: The member each ingested document carries; the tailor's JSON has ``": "`` after keys.
SEQ_FIELD = "swarm_seq"
_SEQ = re.compile(rb'"swarm_seq": ?(\d+)')
_ERROR = re.compile(rb'\], "error": "([a-z_]+)"')


@dataclass(frozen=True)
class Reader:
    """How one tail reads: ``fast``, ``slow`` (``rate`` bytes/s) or ``stalled``."""

    kind: str = "fast"
    rate: int = 0


@dataclass
class TailStats:
    """What one tail saw. ``seen[i]`` is set when ``swarm_seq == base + i`` arrived."""

    reader: Reader
    base: int
    status: int = 0
    started: bool = False  # the opening ``{"subscription_id": ...`` arrived
    connect_s: float = 0.0  # from connect to the opening
    hits: int = 0  # distinct sequence numbers received
    duplicates: int = 0
    stale: int = 0  # numbers below ``base`` (sent before this client joined)
    bytes: int = 0
    last_hit_at: float = 0.0
    end: str = "open"
    refusal: bytes = b""  # the start of a non-200 answer's body (why it was refused)
    seen: bytearray = field(default_factory=bytearray, repr=False)

    def missing(self, sent: Sequence[int]) -> int:
        """How many of the sequence numbers ``sent`` (all >= base) never arrived."""
        seen, base = self.seen, self.base
        return sum(1 for n in sent if n - base >= len(seen) or not seen[n - base])

    def copy(self) -> TailStats:
        return TailStats(**{**self.__dict__, "seen": bytearray(self.seen)})


class TailProtocol(asyncio.Protocol):
    """One HTTP/1.1 tail: request, status line, then sequence numbers until the end."""

    def __init__(self, request: bytes, stats: TailStats, started: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.started = started
        self.transport: asyncio.Transport | None = None
        self._head = b""
        self._in_body = False
        self._rest = b""
        self._tail = b""
        self._opening = b""
        self._t0 = time.perf_counter()
        self._window_start = 0.0
        self._window_bytes = 0
        self._resume: asyncio.TimerHandle | None = None
        self._free = False  # slow or stalled no more (``read_freely``)
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.stats.bytes += len(data)
        if not self._in_body:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end], self._head[end + 4 :]
            self._head = b""
            self._in_body = True
            parts = head.split(b" ", 2)
            self.stats.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        self._tail = (self._tail + data)[-1024:]  # the body's end: where an error or the closing is
        if len(self._opening) < 1024:  # the body's start: where the stream's opening is
            self._opening += data[: 1024 - len(self._opening)]
        buf = self._rest + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._rest = buf
        else:
            self._rest = buf[cut:]
            self._count(buf[:cut])
        if not self.stats.started and (b'"subscription_id"' in self._opening or self.stats.status != 200):
            self.stats.started = self.stats.status == 200
            self.stats.connect_s = time.perf_counter() - self._t0
            if not self.started.done():
                self.started.set_result(None)
            if self.stats.reader.kind == "stalled" and self.transport is not None:
                self.transport.pause_reading()
        if self.stats.reader.kind == "slow" and not self._free:
            self._throttle(len(data))

    def _count(self, body: bytes) -> None:
        found = _SEQ.findall(body)
        if not found:
            return
        st = self.stats
        seen, base = st.seen, st.base
        for raw in found:
            i = int(raw) - base
            if i < 0:
                st.stale += 1
                continue
            if i >= len(seen):
                seen.extend(bytes(i + 1024 - len(seen)))
            if seen[i]:
                st.duplicates += 1
            else:
                seen[i] = 1
                st.hits += 1
        st.last_hit_at = time.monotonic()

    def _throttle(self, n: int) -> None:
        """Token bucket over 1 s windows: pause the transport until the budget allows more."""
        if self.transport is None or self.stats.reader.rate <= 0 or self._resume is not None:
            return
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_bytes = now, 0
        self._window_bytes += n
        if self._window_bytes >= self.stats.reader.rate:
            delay = self._window_bytes / self.stats.reader.rate - (now - self._window_start)
            self.transport.pause_reading()
            self._resume = asyncio.get_running_loop().call_later(max(delay, 0.01), self._unthrottle)

    def _unthrottle(self) -> None:
        self._resume = None
        self._window_start, self._window_bytes = time.monotonic(), 0
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def read_freely(self) -> None:
        """Stop being slow or stalled: read the rest at full speed (to see how it ended)."""
        self._free = True
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._rest:
            self._count(self._rest)
            self._rest = b""
        error = _ERROR.search(self._tail)
        if self.stats.status != 200:
            self.stats.end = f"http_{self.stats.status}"
            self.stats.refusal = self._tail[:300]
        elif error is not None:
            self.stats.end = error.group(1).decode()
        elif self._tail.rstrip(b"\r\n0").endswith(b"]}"):
            self.stats.end = "closed"
        else:
            self.stats.end = "reset" if exc is not None else "eof"
        if not self.started.done():
            self.started.set_result(None)
        if not self.lost.done():
            self.lost.set_result(None)


class FailedTail:
    """A tail that never connected: only its figures."""

    def __init__(self, stats: TailStats) -> None:
        self.stats = stats
        self.transport = None
