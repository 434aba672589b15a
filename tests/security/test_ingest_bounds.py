"""Ingest bodies cannot make a real beater spend memory: bombs, item floods, unread refusals.

One beater with an ingest token for the module. Each test resets the
beater's peak resident size (``/proc/<pid>/clear_refs``), sends one request,
and reads the peak (``VmHWM``) once the answer is in: what the request cost
at its worst, whatever happened in between. The bound, 100 MB, is what a
gzip bomb of 61 kB (63 MB of ``[{},{},...]``) cost far beyond before the
decoder and the parser were bounded: about 2 GB, for a 413 at the end.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import random
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.metrics_page import metric
from devstack.stack import Stack
from tests.real_stack import EngineHandle, RouterHandle, ServiceHandle

pytestmark = pytest.mark.integration

TOKEN = "bounds-" + "0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
JSON = {"content-type": "application/json"}
GZIP = {"content-encoding": "gzip"}
#: What one refused request may add to the beater's peak resident size.
PEAK_BOUND = 100 * 1024 * 1024
REFUSALS = "estrom_beater_body_refusals_total"


@dataclass
class Answer:
    status: int
    body: dict[str, Any]


@pytest.fixture(scope="module")
def guarded(stack: Stack, engine: EngineHandle, router: RouterHandle) -> Iterator[ServiceHandle]:
    """A beater of its own (its peak memory is this module's alone), with an ingest token."""
    handle = stack.start_beater(ESTROM_INGEST_TOKEN=TOKEN)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """61 kB of gzip, 63 MB of ``[{},{},...]`` (21 million items), under the 64 MiB body limit."""
    return gzip.compress(b"[" + b"{}," * 21_000_000 + b"{}]", 9)


@pytest.fixture(scope="module")
def overflow() -> bytes:
    """About 100 kB of gzip, 100 MB decoded: past the size limit, so decoding it at all would be a 413."""
    return gzip.compress(b"[" + b" " * 100_000_000 + b"]")


def post(beater: ServiceHandle, index: str, body: bytes, headers: dict[str, str]) -> Answer:
    """POST an ingest body with exactly ``headers`` (no Content-Type unless given)."""
    conn = http.client.HTTPConnection(beater.host, beater.port, timeout=120)
    try:
        conn.request("POST", f"/api/v0.1/ingest/{urllib.parse.quote(index)}", body, headers)
        resp = conn.getresponse()
        return Answer(resp.status, json.loads(resp.read()))
    finally:
        conn.close()


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {key} for process {pid}")


def peak_growth(
    beater: ServiceHandle, index: str, body: bytes, headers: dict[str, str]
) -> tuple[Answer, int]:
    """The answer to one request, and how far above its resident size before it the beater's peak went."""
    try:
        Path(f"/proc/{beater.pid}/clear_refs").write_text("5")  # the peak (VmHWM) := the current size
    except OSError as exc:
        pytest.skip(f"cannot reset the beater's peak resident size here: {exc}")
    before = status_kib(beater.pid, "VmRSS")
    answer = post(beater, index, body, headers)
    return answer, (status_kib(beater.pid, "VmHWM") - before) * 1024


def refusals(beater: ServiceHandle, limit: str) -> float:
    return metric(beater.url, REFUSALS, limit=limit)


def test_gzip_bomb_is_refused_by_the_ratio_while_decoding(
    guarded: ServiceHandle, index: str, bomb: bytes
) -> None:
    assert len(bomb) < 64 * 1024
    counted = refusals(guarded, "max_ratio")
    answer, growth = peak_growth(guarded, index, bomb, {**AUTH, **JSON, **GZIP})
    assert answer.status == 413, answer.body
    assert answer.body["error"] == "body_too_large"
    assert (answer.body["setting"], answer.body["limit"]) == ("ESTROM_INGEST_MAX_RATIO", 100)
    assert "ESTROM_INGEST_MAX_RATIO" in answer.body["reason"]
    assert growth < PEAK_BOUND, f"the beater's peak grew by {growth / 2**20:.0f} MiB"
    assert refusals(guarded, "max_ratio") == counted + 1


def test_a_ratio_bomb_under_the_size_limit_is_refused_by_the_ratio(
    guarded: ServiceHandle, index: str
) -> None:
    small = gzip.compress(json.dumps([{"message": "x" * 5_000_000}]).encode())  # 5 MB in 5 kB
    answer = post(guarded, index, small, {**AUTH, **JSON, **GZIP})
    assert answer.status == 413, answer.body
    assert answer.body["setting"] == "ESTROM_INGEST_MAX_RATIO"


def test_compressed_bodies_within_the_ratio_are_read(guarded: ServiceHandle, index: str) -> None:
    rng = random.Random(7)
    docs = [{"n": i, "blob": base64.b64encode(rng.randbytes(3000)).decode()} for i in range(1000)]
    plain = json.dumps(docs).encode()  # 4 MB that compresses about 1.3 times
    answer = post(guarded, index, gzip.compress(plain), {**AUTH, **JSON, **GZIP})
    assert answer.status == 200, answer.body
    assert answer.body["accepted"] == 1000
    # Under 1 MiB decoded the ratio is not judged: a small, very repetitive batch goes through.
    same = json.dumps([{"level": "info", "message": "ok"}] * 5000).encode()
    assert len(same) / len(gzip.compress(same)) > 100
    answer = post(guarded, index, gzip.compress(same), {**AUTH, **JSON, **GZIP})
    assert answer.status == 200, answer.body
    assert answer.body["accepted"] == 5000


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" + b"{}," * 5_600_000 + b"{}]", "application/json"),  # 16 MB, 5.6 million items
        (b"{}\n" * 5_600_000, "application/x-ndjson"),
    ],
    ids=["array", "ndjson"],
)
def test_items_past_max_docs_are_refused_without_building_them(
    guarded: ServiceHandle, index: str, body: bytes, content_type: str
) -> None:
    counted = refusals(guarded, "max_docs")
    answer, growth = peak_growth(guarded, index, body, {**AUTH, "content-type": content_type})
    assert answer.status == 413, answer.body
    assert answer.body["error"] == "too_many_documents"
    assert (answer.body["setting"], answer.body["limit"]) == ("ESTROM_INGEST_MAX_DOCS", 10_000)
    # Holding the body (raw and as text) is expected; 5.6 million objects would be 400 MB more.
    assert growth < PEAK_BOUND, f"the beater's peak grew by {growth / 2**20:.0f} MiB"
    assert refusals(guarded, "max_docs") == counted + 1


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ],
)
def test_bodies_a_cross_site_form_can_send_are_415(
    guarded: ServiceHandle, index: str, content_type: str | None
) -> None:
    headers = {**AUTH, **({"content-type": content_type} if content_type else {})}
    answer = post(guarded, index, b'{"message": "from a form"}', headers)
    assert answer.status == 415, answer.body
    assert answer.body["error"] == "unsupported_media_type"
    assert "application/json" in answer.body["reason"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=UTF-8",
        "application/x-ndjson",
        "application/vnd.acme+json",
    ],
)
def test_json_types_are_read(guarded: ServiceHandle, index: str, content_type: str) -> None:
    answer = post(guarded, index, b'{"message": "typed"}\n', {**AUTH, "content-type": content_type})
    assert answer.status == 200, answer.body
    assert answer.body["accepted"] == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({**AUTH, "content-type": "text/plain"}, 415),
    ],
    ids=["no-token", "wrong-token", "form-type"],
)
def test_a_refused_request_has_its_body_never_decoded(
    guarded: ServiceHandle, index: str, overflow: bytes, headers: dict[str, str], status: int
) -> None:
    counted = refusals(guarded, "max_ratio") + refusals(guarded, "max_body")
    answer, growth = peak_growth(guarded, index, overflow, {**JSON, **GZIP, **headers})
    assert answer.status == status, answer.body  # not the 413 that decoding it would give
    assert growth < 16 * 1024 * 1024, f"the beater's peak grew by {growth / 2**20:.0f} MiB"
    assert refusals(guarded, "max_ratio") + refusals(guarded, "max_body") == counted
    answer = post(guarded, index, overflow, {**AUTH, **JSON, **GZIP})
    assert answer.status == 413, answer.body  # what decoding it gives
