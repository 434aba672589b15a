"""Compressed ingest bodies and the ingest token (bug 1), on a real beater.

Logstash's ``http`` output with ``http_compression => true`` sends gzip and
drops a batch on any 4xx but 429: a compressed body must be read, not
refused. The limits, 415 and corrupt bodies are also tested in memory
(tests/memory/test_beater_routes.py); here the documents go all the way to a
subscriber.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from devstack.wamp_client import WampClient
from tests.http_client import ingest
from tests.integration.delivery_fence import fence, markers, watch_all
from tests.real_stack import ServiceHandle, StartService

pytestmark = pytest.mark.integration


def _docs(marker: str, n: int = 3) -> bytes:
    return json.dumps([{"kind": "x", "marker": f"{marker}{i}"} for i in range(n)]).encode()


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # RFC 1950 (zlib-wrapped), what HTTP calls deflate
        ("deflate", lambda raw: zlib.compress(raw)[2:-4]),  # raw deflate, as some senders send it
    ],
)
def test_compressed_body_is_decoded_and_delivered(
    beater: ServiceHandle, wamp: WampClient, index: str, encoding: str, encode
) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, encode(_docs("z")), headers={"content-encoding": encoding})
    assert resp.status == 200, resp.body
    assert resp.json() == {"accepted": 3, "published": 3, "rejected": []}
    assert markers(sink.wait_for_marker("z2")) == ["z0", "z1", "z2"]


def test_byte_order_mark_is_accepted(beater: ServiceHandle, wamp: WampClient, index: str) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, b"\xef\xbb\xbf" + _docs("bom", 1))
    assert resp.status == 200, resp.body
    assert markers(sink.wait_for_marker("bom0")) == ["bom0"]


def test_gzip_bomb_is_413_and_loses_nothing_after(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    small = start_beater(ESTROM_INGEST_MAX_BODY="100000")
    sink = watch_all(wamp, index)
    bomb = gzip.compress(b"[" + b" " * 50_000_000 + b"]")  # 50 MB of spaces in about 50 kB
    assert len(bomb) < 100_000
    resp = ingest(small.url, index, bomb, headers={"content-encoding": "gzip"})
    assert resp.status == 413
    assert resp.json()["error"] == "body_too_large"
    assert "decoded" in resp.json()["reason"]
    assert markers(fence(small.url, index, sink)) == ["fence"]


def test_unknown_encoding_is_415(beater: ServiceHandle, wamp: WampClient, index: str) -> None:
    sink = watch_all(wamp, index)
    resp = ingest(beater.url, index, _docs("br"), headers={"content-encoding": "br"})
    assert resp.status == 415
    assert resp.json()["error"] == "unsupported_encoding"
    assert markers(fence(beater.url, index, sink)) == ["fence"]


def test_token_with_whitespace_in_the_setting_matches(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    guarded = start_beater(ESTROM_INGEST_TOKEN="  s3cret\n")
    sink = watch_all(wamp, index)
    odd = ingest(guarded.url, index, _docs("no", 1), headers={"authorization": "Bearer s3cr\u00e9t"})
    assert odd.status == 401  # a non-ASCII header is a wrong token, not an internal error
    ok = ingest(guarded.url, index, _docs("tok", 1), headers={"authorization": "Bearer s3cret"})
    assert ok.status == 200, ok.body
    assert markers(sink.wait_for_marker("tok0")) == ["tok0"]
