"""Many concurrent HTTP tails of one tailor, from one cheap client process.

Why this exists
---------------
The fan-out and soak benchmarks need hundreds to thousands of live tails
(``GET /api/v0.1/docs``) reading at different speeds, without the client
process becoming the bottleneck it measures. So each tail is a bare asyncio
``Protocol`` (``bench/tail_client.py``: no HTTP library, no JSON parsing),
all of them on one event loop in its own thread, and the documents ingested
(``log_lines``) are numbered so that every tail can tell what it missed.

``finish`` reads whatever the slow and stalled tails left (at full speed,
bounded) to see how the tailor ended each stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from bench.tail_client import SEQ_FIELD, FailedTail, Reader, TailProtocol, TailStats
from devstack.metrics_page import samples
from devstack.sender import BodyFor

T = TypeVar("T")

#: Socket receive buffer of slow and stalled readers: the backlog must pile up
#: in the tailor (which drops the reader), not in this machine's kernel.
SMALL_RCVBUF = 32 * 1024


class Swarm:
    """Tails of one tailor on an asyncio loop of their own; blocking methods for the caller."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.loop = asyncio.new_event_loop()
        self._tails: list[TailProtocol] = []
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
            _, tail = await loop.create_connection(lambda: TailProtocol(request, stats, started), sock=sock)
        except OSError as exc:
            sock.close()
            stats.end = f"connect_failed:{exc.__class__.__name__}"
            self._tails.append(FailedTail(stats))  # type: ignore[arg-type]
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
                if isinstance(t, TailProtocol) and t.stats.end == "open" and t.stats.reader.kind != "fast"
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
            live = [t for t in self._tails if isinstance(t, TailProtocol) and t.transport is not None]
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
