"""``estrom post``: send NDJSON or a JSON array to the beater in batches.

Batches are retried on 429 and 503 as Logstash's ``http`` output does:
after the ``Retry-After`` the beater names, or an exponential back-off
(1 s doubling to 64 s) if that is longer. Delivery is at-least-once, as the
contract says: a batch retried after a 503 may reach a subscriber twice.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

import ijson

from common.contract import QUEUE_FULL, UNAVAILABLE
from estrom_cli._http import CliError, connect, error_reason, say

#: what the beater answers with Retry-After: a full ingest queue, an engine or router away
RETRY_STATUSES = frozenset({QUEUE_FULL.status, UNAVAILABLE.status})
BACKOFF_START = 1.0
BACKOFF_MAX = 64.0
REQUEST_TIMEOUT = 120.0


@dataclass
class Batch:
    """One request: the body, and the input position (line or item number) of each body position."""

    body: bytes
    content_type: str
    positions: list[int]
    end_offset: int


@dataclass
class Totals:
    accepted: int = 0
    published: int = 0
    requests: int = 0
    retries: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


def _peek(stream: IO[bytes]) -> bytes:
    """The first non-whitespace byte, without consuming the rest."""
    buffered = stream.peek(64) if hasattr(stream, "peek") else b""
    return buffered.lstrip()[:1]


def ndjson_batches(stream: IO[bytes], size: int) -> Iterator[Batch]:
    """Batches of raw lines (the beater parses and rejects them); positions are 1-based line numbers."""
    lines: list[bytes] = []
    numbers: list[int] = []
    offset = 0
    for number, line in enumerate(stream, start=1):
        offset += len(line)
        if not line.strip():
            continue
        lines.append(line.rstrip(b"\r\n"))
        numbers.append(number)
        if len(lines) >= size:
            yield Batch(b"\n".join(lines) + b"\n", "application/x-ndjson", numbers, offset)
            lines, numbers = [], []
    if lines:
        yield Batch(b"\n".join(lines) + b"\n", "application/x-ndjson", numbers, offset)


def array_batches(stream: IO[bytes], size: int) -> Iterator[Batch]:
    """Batches of the elements of one JSON array; positions are 0-based item numbers."""
    items: list[Any] = []
    numbers: list[int] = []
    try:
        for number, item in enumerate(ijson.items(stream, "item", use_float=True)):
            items.append(item)
            numbers.append(number)
            if len(items) >= size:
                yield Batch(json.dumps(items).encode(), "application/json", numbers, _tell(stream))
                items, numbers = [], []
    except ijson.JSONError as exc:
        raise CliError(f"the input is not a JSON array: {exc}") from None
    if items:
        yield Batch(json.dumps(items).encode(), "application/json", numbers, _tell(stream))


def _tell(stream: IO[bytes]) -> int:
    try:
        return stream.tell()
    except OSError:
        return 0


class Progress:
    """A one-line bar on stderr, only when stderr is a terminal."""

    def __init__(self, total_bytes: int, enabled: bool) -> None:
        self.total = total_bytes
        self.enabled = enabled

    def show(self, done_bytes: int, totals: Totals, note: str = "") -> None:
        if not self.enabled:
            return
        counts = f"{totals.accepted} accepted, {totals.published} published, {len(totals.rejected)} rejected"
        if self.total > 0:
            share = min(done_bytes / self.total, 1.0)
            filled = int(share * 30)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {share:4.0%} "
        else:
            bar = ""
        sys.stderr.write(f"\r\033[K{bar}{counts}{note}")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def send_batch(
    beater: str, path: str, batch: Batch, token: str, max_retries: int, totals: Totals, progress: Progress
) -> dict[str, Any]:
    """POST one batch, retrying 429/503 (and lost connections once the beater was reached)."""
    headers = {"Content-Type": batch.content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    backoff = BACKOFF_START
    attempt = 0
    while True:
        conn, base = connect(beater, REQUEST_TIMEOUT)
        try:
            conn.request("POST", base + path, body=batch.body, headers=headers)
            response = conn.getresponse()
            status, body, retry_after = response.status, response.read(), response.getheader("Retry-After")
        except (OSError, http.client.HTTPException) as exc:
            if totals.requests == 0:
                raise CliError(f"cannot reach the beater at {beater}: {exc}") from None
            status, body, retry_after, why = 0, b"", None, f"connection failed ({exc})"
        else:
            why = error_reason(status, body)
        finally:
            conn.close()
        if status == 200 or (status == 400 and _all_rejected(body)):
            totals.requests += 1
            return json.loads(body)
        if status not in RETRY_STATUSES and status != 0:
            raise CliError(f"the beater refused a batch: {why}")
        attempt += 1
        if attempt > max_retries:
            raise CliError(f"giving up after {max_retries} retries: {why}")
        delay = max(_seconds(retry_after), backoff)
        backoff = min(backoff * 2, BACKOFF_MAX)
        totals.retries += 1
        progress.done()
        say(f"{why}; retry {attempt}/{max_retries} in {delay:g} s")
        time.sleep(delay)


def _seconds(retry_after: str | None) -> float:
    try:
        return max(float(retry_after or 0), 0.0)
    except ValueError:
        return 0.0


def _all_rejected(body: bytes) -> bool:
    """A 400 for a batch of only bad items: report them, the other batches go on."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    return isinstance(doc, dict) and doc.get("error") == "unreadable_body" and bool(doc.get("rejected"))


def run_post(
    beater: str, index: str, source: str, *, batch_size: int, token: str, max_retries: int, out: TextIO
) -> int:
    if source == "-":
        stream: IO[bytes] = sys.stdin.buffer
        total_bytes = 0
    else:
        try:
            stream = open(source, "rb")  # noqa: SIM115 - closed below, after the generator is done
        except OSError as exc:
            raise CliError(f"cannot read {source}: {exc}") from None
        total_bytes = os.fstat(stream.fileno()).st_size
    is_array = _peek(stream) == b"["
    unit = "item" if is_array else "line"
    batches = array_batches(stream, batch_size) if is_array else ndjson_batches(stream, batch_size)
    totals = Totals()
    progress = Progress(total_bytes, sys.stderr.isatty())
    path = f"/api/v0.1/ingest/{index}"
    try:
        for batch in batches:
            result = send_batch(beater, path, batch, token, max_retries, totals, progress)
            totals.accepted += int(result.get("accepted", 0))
            totals.published += int(result.get("published", 0))
            for item in result.get("rejected", []):
                position = int(item.get("position", -1))
                where = batch.positions[position] if 0 <= position < len(batch.positions) else position
                totals.rejected.append((where, str(item.get("reason", ""))))
            progress.show(batch.end_offset, totals)
    finally:
        progress.done()
        if stream is not sys.stdin.buffer:
            stream.close()
    out.write(
        f"accepted {totals.accepted}, published {totals.published}, rejected {len(totals.rejected)}"
        f" ({totals.requests} requests, {totals.retries} retries)\n"
    )
    for where, reason in totals.rejected:
        out.write(f"rejected {unit} {where}: {reason}\n")
    out.flush()
    return 0
