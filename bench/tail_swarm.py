"""Many concurrent HTTP tails of one tailor, from one cheap client process.

Why this exists
---------------
The fan-out and soak benchmarks need hundreds to thousands of live tails
(``GET /api/v0.1/docs``) reading at different speeds, without the client
process becoming the bottleneck it measures. So each tail is a bare asyncio
``Protocol`` on one event loop (its own thread): no HTTP library, no JSON
parsing. The documents the benchmark ingests carry a unique
``"swarm_seq": <n>`` member; a tail finds those numbers with one regular
expression per read and records them in a bitmap, which is enough to say,
per client, how many hits arrived, which sequence numbers are missing and
which came twice. Each hit of the JSON framing starts on its own line (and
chunked transfer framing never splits one, as the tailor writes each hit
with one ``write``), so a read is parsed up to its last newline and the rest
kept for the next one.

Reader behaviours: ``fast`` reads everything at once; ``slow`` reads at a
limited byte rate (pausing the transport, with a small socket receive
buffer so the kernel does not absorb the backlog); ``stalled`` stops reading
once its stream has started. ``finish`` reads whatever the slow and stalled
ones left (at full speed, bounded) to see how the tailor ended each stream:
``open`` (still streaming), ``closed`` (a proper ``]}``), an error code from
the closing ``"error"`` member (``slow_reader`` when dropped), or ``eof`` /
``reset`` without a closing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devstack.metrics_page import samples
from devstack.sender import BodyFor

T = TypeVar("T")

#: The member each ingested document carries; the tailor's JSON has ``": "`` after keys.
SEQ_FIELD = "swarm_seq"
_SEQ = re.compile(rb'"swarm_seq": ?(\d+)')
_ERROR = re.compile(rb'\], "error": "([a-z_]+)"')
#: Socket receive buffer of slow and stalled readers: the backlog must pile up
#: in the tailor (which drops the reader), not in this machine's kernel.
SMALL_RCVBUF = 32 * 1024


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


class _Tail(asyncio.Protocol):
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
        self._tail = (self._tail + data)[-1024:]
        buf = self._rest + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            self._rest = buf
        else:
            self._rest = buf[cut:]
            self._count(buf[:cut])
        if not self.stats.started and (b'"subscription_id"' in self._tail or self.stats.status != 200):
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


class Swarm:
    """Tails of one tailor on an asyncio loop of their own; blocking methods for the caller."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._tails: list[_Tail] = []
        self.thread_id = 0
        started = threading.Event()

        def run() -> None:
            self.thread_id = threading.get_native_id()
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(started.set)
            self.loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True, name="tail-swarm")
        self._thread.start()
        started.wait(10)

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        async def call() -> T:
            return fn()

        return self._run(call(), timeout)

    def open(
        self, path: str, readers: Sequence[Reader], base: int, concurrency: int = 64, timeout: float = 300.0
    ) -> float:
        """Open one tail per reader (``concurrency`` at a time), each until its stream started.

        Returns the seconds it took. ``base``: the first sequence number the
        tails are expected to see (the next one the sender will use).
        """
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        t0 = time.perf_counter()
        self._run(self._open_all(request, readers, base, concurrency), timeout)
        return time.perf_counter() - t0

    async def _open_all(self, request: bytes, readers: Sequence[Reader], base: int, concurrency: int) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(reader: Reader) -> None:
            async with gate:
                await self._open_one(request, reader, base)

        await asyncio.gather(*(one(r) for r in readers))

    async def _open_one(self, request: bytes, reader: Reader, base: int) -> None:
        loop = asyncio.get_running_loop()
        stats = TailStats(reader, base)
        started: asyncio.Future[None] = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if reader.kind != "fast":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, (self.host, self.port))
            _, tail = await loop.create_connection(lambda: _Tail(request, stats, started), sock=sock)
        except OSError as exc:
            sock.close()
            stats.end = f"connect_failed:{exc.__class__.__name__}"
            self._tails.append(_Failed(stats))  # type: ignore[arg-type]
            return
        self._tails.append(tail)
        await started

    def stats(self) -> list[TailStats]:
        """A consistent copy of every tail's figures."""
        return self._call(lambda: [t.stats.copy() for t in self._tails])

    def counts(self) -> list[int]:
        """Distinct hits per tail so far (cheap)."""
        return self._call(lambda: [t.stats.hits for t in self._tails])

    def wait_for(self, kinds: set[str], hits: int, timeout: float) -> bool:
        """Block until every still-open tail of these reader kinds has ``hits`` distinct hits."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = self._call(
                lambda: sum(
                    1
                    for t in self._tails
                    if t.stats.reader.kind in kinds and t.stats.end == "open" and t.stats.hits < hits
                )
            )
            if lagging == 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)  # polling another thread's state, bounded by the deadline

    def finish(self, timeout: float = 20.0) -> list[TailStats]:
        """Let slow and stalled tails read the rest; close every tail; return the final figures.

        Fast tails still open stay ``open`` (closed here, by this client).

        A tail whose stream the tailor ended yields its ending; one still
        streaming after ``timeout`` keeps ``open``.
        """

        async def drain() -> None:
            live = [
                t
                for t in self._tails
                if isinstance(t, _Tail) and t.stats.end == "open" and t.stats.reader.kind != "fast"
            ]
            for tail in live:
                tail.read_freely()
            if live:
                await asyncio.wait([t.lost for t in live], timeout=timeout)

        self._run(drain(), timeout + 10)
        final = self.stats()
        self.close()
        return final

    def close(self) -> None:
        """Close every tail (the figures stay)."""

        async def close_all() -> None:
            live = [t for t in self._tails if isinstance(t, _Tail) and t.transport is not None]
            for tail in live:
                if tail.stats.end == "open" and tail.transport is not None:
                    tail.transport.abort()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            self._run(close_all(), 30)

    def stop(self) -> None:
        self.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self.loop.is_running():
            self.loop.close()


class _Failed:
    """A tail that never connected: only its figures."""

    def __init__(self, stats: TailStats) -> None:
        self.stats = stats
        self.transport = None


def summarize(final: Sequence[TailStats], sent: Sequence[int]) -> dict[str, dict[str, Any]]:
    """Per reader kind: clients, complete ones, hits, missing, duplicates, and how they ended."""
    out: dict[str, dict[str, Any]] = {}
    for st in final:
        row = out.setdefault(
            st.reader.kind,
            {"clients": 0, "complete": 0, "hits": 0, "missing": 0, "duplicates": 0, "ends": {}},
        )
        missing = st.missing(sent)
        row["clients"] += 1
        row["complete"] += missing == 0  # at-least-once: a retried batch may come twice
        row["hits"] += st.hits
        row["missing"] += missing
        row["duplicates"] += st.duplicates
        row["ends"][st.end] = row["ends"].get(st.end, 0) + 1
    return out


def tailor_metrics(tailor_url: str) -> dict[str, float]:
    """Every sample of the tailor's /metrics page, keyed by name with labels (prefix removed)."""
    return samples(tailor_url, prefix="estrom_tailor_")


def log_lines(pad: int) -> BodyFor:
    """Request bodies of documents shaped like a log line, ``pad`` extra bytes of message each,
    every one numbered by its ``SEQ_FIELD`` (what every tail should receive)."""
    filler = ("lorem ipsum dolor sit amet " * (pad // 27 + 1))[:pad]

    def body(numbers: Sequence[int], _sent_at: float) -> bytes:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        docs = [
            {
                "@timestamp": stamp,
                "level": "error",
                "service": "swarm",
                "host": f"web{n % 50:03d}",
                "message": f"request {n} failed: upstream timeout {filler}",
                SEQ_FIELD: n,
            }
            for n in numbers
        ]
        return json.dumps(docs, separators=(",", ":")).encode()

    return body


def thread_cpu_seconds(tid: int) -> float:
    """User + system CPU time of one thread of this process (the swarm's loop)."""
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
