"""Bounded ingest bodies, in process: the ratio limit of the decoder, counting items while parsing.

The decoder reads a spooled body chunk by chunk and stops at the first byte
past its size or ratio bound; the parser counts items as it reads them, so a
body with millions of them is refused after ``max_docs`` without building
the rest (measured with ``tracemalloc``: Python's own allocations).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beater.http.content_encoding import (
    RATIO_FLOOR,
    READ_SIZE,
    STEP,
    BodyDecoder,
    DecodedTooLarge,
    RatioTooHigh,
    decode_file,
)
from beater.ingest.body import (
    FAST_MAX,
    TooManyDocuments,
    UnreadableBody,
    _array_items,
    _content_lines,
    media_type_problem,
)
from tests.unit.ingest_defaults import parse

BOMB = gzip.compress(b"\0" * 200_000_000)  # about 200 kB expanding to 200 MB


class CountingReader(io.BytesIO):
    """A spool that remembers how many bytes were read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def drain(source: io.BytesIO, decoder: BodyDecoder) -> int:
    return sum(len(piece) for piece in decode_file(source, decoder))


# --- the ratio ------------------------------------------------------------------------------


def test_a_bomb_stops_at_the_ratio_after_reading_a_few_chunks() -> None:
    source = CountingReader(BOMB)
    decoder = BodyDecoder("gzip", 1 << 40, max_ratio=100)
    with pytest.raises(RatioTooHigh, match="expands more than 100 times") as refused:
        drain(source, decoder)
    assert refused.value.limit == "max_ratio"
    assert refused.value.value == 100
    assert RATIO_FLOOR < decoder.decoded <= RATIO_FLOOR + STEP
    assert source.read_bytes <= READ_SIZE  # the rest of the body was never read


def test_the_ratio_is_judged_past_the_floor_only() -> None:
    repetitive = b'{"level": "info"}\n' * 50_000  # 900 kB that compresses about 300 times
    encoded = gzip.compress(repetitive)
    assert len(repetitive) < RATIO_FLOOR
    assert len(repetitive) > 100 * len(encoded)
    assert drain(io.BytesIO(encoded), BodyDecoder("gzip", 1 << 30, max_ratio=10)) == len(repetitive)


def test_bodies_within_the_ratio_decode_whole() -> None:
    plain = os.urandom(3 * RATIO_FLOOR).hex().encode()  # hex compresses about 2 times
    for encoding, encode in (("gzip", gzip.compress), ("deflate", zlib.compress)):
        decoder = BodyDecoder(encoding, 1 << 30, max_ratio=3)
        assert drain(io.BytesIO(encode(plain)), decoder) == len(plain)
        assert decoder.consumed == len(encode(plain))  # every encoded byte, once


def test_without_a_ratio_only_the_size_bounds() -> None:
    decoder = BodyDecoder("gzip", 5_000_000)
    with pytest.raises(DecodedTooLarge) as refused:
        drain(io.BytesIO(BOMB), decoder)
    assert not isinstance(refused.value, RatioTooHigh)
    assert (refused.value.limit, refused.value.value) == ("max_body", 5_000_000)


def test_consumed_counts_every_gzip_member() -> None:
    body = gzip.compress(b"[1,") + gzip.compress(b"2]")
    decoder = BodyDecoder("gzip", 1000, max_ratio=1)
    assert b"".join(decode_file(io.BytesIO(body), decoder, read_size=3)) == b"[1,2]"
    assert decoder.consumed == len(body)


# --- counting items while parsing ----------------------------------------------------------


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """The most memory Python held in the block (``peak()``, once it is over)."""
    seen: list[int] = []
    tracemalloc.start()
    try:
        yield lambda: seen[0]
        seen.append(tracemalloc.get_traced_memory()[1])
    finally:
        tracemalloc.stop()


def peak_while(call: Callable[[], object]) -> int:
    """The most memory Python held during ``call``, which must raise TooManyDocuments."""
    with traced() as peak, pytest.raises(TooManyDocuments):
        call()
    return peak()


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b"[" + b"{}," * 2_000_000 + b"{}]", "application/json"),
        (b"{}\n" * 2_000_000, "application/x-ndjson"),
        (b"{}\n" * 2_000_000, "application/json"),  # NDJSON sent as JSON
        (b"\n\n\n" * 1_000_000 + b"{}\n" * 2_000_000, "application/x-ndjson"),
    ],
    ids=["array", "ndjson", "ndjson-as-json", "blank-lines-first"],
)
def test_items_past_max_docs_are_never_all_built(raw: bytes, content_type: str) -> None:
    peak = peak_while(lambda: parse(raw, content_type, max_docs=10_000))
    # The body as text and one scan of it for long integers; two million objects: over 100 MB.
    assert peak < 2 * len(raw) + 8_000_000, peak


def test_a_large_text_orjson_would_refuse_costs_about_a_copy() -> None:
    """orjson, refusing a text, first allocates some twelve times it: large texts never go to it."""
    raw = b'{"message": "' + b"x" * 6_000_000  # a string that never ends
    with traced() as peak, pytest.raises(UnreadableBody, match="not JSON"):
        parse(raw, "application/json")
    assert peak() < 3 * len(raw)


def test_a_large_ndjson_line_orjson_would_refuse_costs_about_a_copy() -> None:
    raw = b'{"a": 1}\n{"message": "' + b"x" * 6_000_000
    with traced() as peak:
        body = parse(raw, "application/x-ndjson")
    assert [position for position, _ in body.docs] == [0]
    assert [r["position"] for r in body.rejected] == [1]
    assert peak() < 3 * len(raw)


def test_small_arrays_are_read_whole_and_counted_after() -> None:
    raw = b"[" + b"{}," * 20_000 + b"{}]"
    assert len(raw) < FAST_MAX
    with pytest.raises(TooManyDocuments, match="ESTROM_INGEST_MAX_DOCS"):
        parse(raw, "application/json", max_docs=20_000)


@pytest.mark.parametrize("fast", [True, False])
def test_a_large_array_read_item_by_item_reads_the_same(fast: bool) -> None:
    docs = [{"n": i, "message": "m" * 100, "tags": ["a", "b"]} for i in range(10_000)]
    docs[5] = 7  # type: ignore[call-overload]
    raw = json.dumps(docs).encode()
    assert len(raw) > FAST_MAX
    body = parse(raw, "application/json", max_docs=10_000, fast=fast)
    assert [position for position, _ in body.docs] == [i for i in range(10_000) if i != 5]
    assert body.docs[5] == (6, docs[6])
    assert [r["position"] for r in body.rejected] == [5]


JSON_TEXTS = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10,
).map(json.dumps)


@given(
    items=st.lists(JSON_TEXTS, max_size=6),
    spaces=st.lists(st.sampled_from(["", " ", "\n", "\t\r\n "]), min_size=8, max_size=8),
    damage=st.sampled_from(["", ",", "]", "x", "[", ",]", "}"]),
)
def test_item_by_item_is_json_loads(items: list[str], spaces: list[str], damage: str) -> None:
    """Valid or not, an array reads as ``json.loads`` reads it: the same items, or the same error."""
    a, b, c, d, *_ = spaces
    text = a + "[" + b + ("," + c).join(items) + d + "]" + damage
    try:
        expected: object = json.loads(text)
    except ValueError as exc:
        expected = str(exc)
    try:
        got: object = _array_items(text, 1000)
    except ValueError as exc:
        got = str(exc)
    assert got == expected


def test_item_by_item_stops_past_max_docs() -> None:
    with pytest.raises(TooManyDocuments):
        _array_items("[" + "{}," * 5 + "{}]", 5)
    assert len(_array_items("[" + "{}," * 4 + "{}]", 5)) == 5


@given(
    st.lists(st.sampled_from(["", " ", "\t", "{}", ' {"a":1} ', "x", "\r", "\x0c", "\u2028"]), max_size=12)
)
def test_content_lines_are_the_non_blank_lines(lines: list[str]) -> None:
    text = "\n".join(lines)
    expected = [(n, line) for n, line in enumerate(text.split("\n")) if line.strip()]
    assert list(_content_lines(text)) == expected


# --- content types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/x-ndjson",
        "application/ndjson",
        "text/json",
        "application/vnd.acme+json",
    ],
)
def test_json_types_are_accepted(content_type: str) -> None:
    assert media_type_problem(content_type) is None


@pytest.mark.parametrize(
    ("content_type", "words"),
    [
        (None, "Content-Type is missing"),
        ("", "Content-Type is missing"),
        ("text/plain", "'text/plain' is not accepted"),
        ("application/x-www-form-urlencoded", "'application/x-www-form-urlencoded'"),
        ("multipart/form-data; boundary=x", "'multipart/form-data'"),
        ("application/octet-stream", "'application/octet-stream'"),
    ],
)
def test_other_types_are_refused(content_type: str | None, words: str) -> None:
    problem = media_type_problem(content_type)
    assert problem is not None
    assert words in problem
    assert "application/json" in problem
