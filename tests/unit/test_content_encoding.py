"""Decoding compressed bodies within a budget."""

from __future__ import annotations

import gzip
import zlib

import pytest

from beater.http.content_encoding import (
    STEP,
    BodyDecoder,
    CorruptBody,
    DecodedTooLarge,
    UnsupportedEncoding,
    parse_encoding,
)

RAW = b'[{"a": 1}, {"b": "' + b"x" * 300_000 + b'"}]'


def decode(encoding: str, data: bytes, budget: int = 10_000_000, chunk: int = 1000) -> bytes:
    decoder = BodyDecoder(encoding, budget)
    out = [piece for i in range(0, len(data), chunk) for piece in decoder.feed(data[i : i + chunk])]
    decoder.finish()
    return b"".join(out)


@pytest.mark.parametrize(
    ("header", "encoding"),
    [(None, "identity"), ("", "identity"), ("identity", "identity"), ("GZIP", "gzip"), ("x-gzip", "x-gzip")],
)
def test_parse_encoding(header: str | None, encoding: str) -> None:
    assert parse_encoding(header) == encoding


@pytest.mark.parametrize("header", ["br", "compress", "gzip, gzip", "zstd"])
def test_unknown_encodings_are_refused(header: str) -> None:
    with pytest.raises(UnsupportedEncoding):
        parse_encoding(header)


@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_gzip_in_any_chunking(chunk: int) -> None:
    assert decode("gzip", gzip.compress(RAW), chunk=chunk) == RAW


def test_concatenated_gzip_members_are_one_body() -> None:
    assert decode("gzip", gzip.compress(b"[1,") + gzip.compress(b"2]")) == b"[1,2]"


@pytest.mark.parametrize("chunk", [1, 1000])
def test_deflate_zlib_wrapped_and_raw(chunk: int) -> None:
    assert decode("deflate", zlib.compress(RAW), chunk=chunk) == RAW
    raw_deflate = zlib.compressobj(wbits=-15)
    data = raw_deflate.compress(RAW) + raw_deflate.flush()
    assert decode("deflate", data, chunk=chunk) == RAW


def test_bomb_stops_at_the_budget_in_bounded_steps() -> None:
    bomb = gzip.compress(b"\0" * 200_000_000)  # about 200 kB expanding to 200 MB
    decoder = BodyDecoder("gzip", 1_000_000)
    sizes: list[int] = []

    def drain() -> None:
        sizes.extend(len(piece) for piece in decoder.feed(bomb))

    with pytest.raises(DecodedTooLarge, match="decoded request body is over the limit of 1000000"):
        drain()
    biggest = max(sizes)
    assert biggest <= STEP
    assert decoder.decoded <= 1_000_000 + STEP


def test_identity_counts_against_the_budget_too() -> None:
    with pytest.raises(DecodedTooLarge):
        decode("identity", b"x" * 101, budget=100)


@pytest.mark.parametrize(
    ("encoding", "data", "reason"),
    [
        ("gzip", b"not gzip at all", "not valid gzip"),
        ("gzip", gzip.compress(RAW)[:-10], "ends before"),
        ("deflate", zlib.compress(RAW)[:100], "ends before"),
        ("gzip", gzip.compress(RAW) + b"trailing", "not valid gzip"),
    ],
)
def test_corrupt_or_truncated_bodies(encoding: str, data: bytes, reason: str) -> None:
    with pytest.raises(CorruptBody, match=reason):
        decode(encoding, data)


def test_empty_body_is_empty_whatever_the_encoding() -> None:
    assert decode("gzip", b"") == b""
