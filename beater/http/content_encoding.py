"""Decoding compressed request bodies chunk by chunk, within a size budget and a ratio.

Logstash's ``http`` output (``http_compression => true``) and most bulk
shippers send ``Content-Encoding: gzip``; some send ``deflate``. The body
limit applies to the decoded size as well: a few kilobytes of gzip may
expand to gigabytes, so the decoder never produces more than a bounded step
at a time and stops as soon as the decoded total passes the budget.

A ratio limit bounds the expansion too: past ``RATIO_FLOOR`` decoded bytes,
a body that decodes to more than ``max_ratio`` times the encoded bytes read
so far is refused at once. Log batches compress 5 to 20 times; a bomb
(``[{},{},...]``, runs of one byte) a thousand times, so it is stopped
after a few megabytes instead of at the size limit, whatever that is set to.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import IO

#: Largest piece of decoded output produced at once, whatever one network chunk expands to.
STEP = 256 * 1024
#: Decoded bytes before the ratio is judged: a small, very repetitive batch is no threat.
RATIO_FLOOR = 1024 * 1024
#: Encoded bytes read from a spooled body per step.
READ_SIZE = 64 * 1024

#: Encodings estrom decodes, as they appear in ``Content-Encoding``.
KNOWN = ("gzip", "x-gzip", "deflate", "identity")


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` estrom does not decode (HTTP 415)."""


class DecodedTooLarge(ValueError):
    """The decoded body passes the budget (HTTP 413); ``limit`` names the bound, ``value`` its size."""

    limit = "max_body"

    def __init__(self, reason: str, value: float) -> None:
        super().__init__(reason)
        self.value = value


class RatioTooHigh(DecodedTooLarge):
    """The body expands more than the ratio allows (HTTP 413)."""

    limit = "max_ratio"


class CorruptBody(ValueError):
    """The body is not valid for its encoding, or ends early (HTTP 400)."""


def parse_encoding(header: str | None) -> str:
    """The one encoding of a ``Content-Encoding`` header, lower case; raises UnsupportedEncoding."""
    codings = [c.strip().lower() for c in (header or "").split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return "identity"
    if len(codings) > 1 or codings[0] not in KNOWN:
        raise UnsupportedEncoding(
            f"Content-Encoding {header!r} is not supported: send the body as is, gzip or deflate"
        )
    return codings[0]


def _zlib_header(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib (RFC 1950) header rather than raw deflate."""
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0


class BodyDecoder:
    """Feeds encoded chunks, yields decoded pieces; ``budget`` bounds the decoded total.

    ``max_ratio`` (None: no limit) bounds decoded bytes per encoded byte
    consumed, once ``RATIO_FLOOR`` bytes are decoded.
    """

    def __init__(self, encoding: str, budget: int, max_ratio: float | None = None) -> None:
        self.encoding = encoding
        self.budget = budget
        self.max_ratio = max_ratio
        self.decoded = 0
        #: encoded bytes the decoder has consumed
        self.consumed = 0
        self._head = b""  # deflate: the first bytes, until we know zlib from raw
        self._inflater: zlib._Decompress | None = None
        if encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._ended = encoding == "identity"
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decoded pieces of ``data``; raises DecodedTooLarge or CorruptBody."""
        if not data:
            return
        self._fed = True
        if self.encoding == "identity":
            self.consumed += len(data)
            yield from self._count(data)
            return
        if self._inflater is None:  # deflate, wrapper not known yet
            self._head += data
            if len(self._head) < 2:
                return
            wbits = zlib.MAX_WBITS if _zlib_header(self._head) else -zlib.MAX_WBITS
            self._inflater = zlib.decompressobj(wbits)
            data, self._head = self._head, b""
        while True:
            inflater = self._inflater
            try:
                out = inflater.decompress(data, STEP)
            except zlib.error as exc:
                raise CorruptBody(f"body is not valid {self.encoding}: {exc}") from None
            left = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            self.consumed += len(data) - len(left)
            yield from self._count(out)
            if inflater.eof:
                self._ended = True
                rest = inflater.unused_data
                if rest and self.encoding in ("gzip", "x-gzip"):
                    # Concatenated gzip members are one stream (RFC 1952).
                    self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._ended = False
                    data = rest
                    continue
                if rest.strip(b"\0"):
                    raise CorruptBody(f"body has data after the end of its {self.encoding} stream")
                return
            self._ended = False
            data = inflater.unconsumed_tail
            if not data and len(out) < STEP:
                return  # all input taken, no output held back

    def finish(self) -> None:
        """The body ended: raise CorruptBody if the encoded stream did not."""
        if self._fed and not self._ended:
            raise CorruptBody(f"body ends before its {self.encoding} stream does")

    def _count(self, out: bytes) -> Iterator[bytes]:
        if not out:
            return
        self.decoded += len(out)
        if self.decoded > self.budget:
            raise DecodedTooLarge(
                f"decoded request body is over the limit of {self.budget} bytes", self.budget
            )
        ratio = self.max_ratio
        if ratio is not None and self.decoded > RATIO_FLOOR and self.decoded > ratio * self.consumed:
            raise RatioTooHigh(
                f"request body expands more than {ratio} times when decoded: "
                f"{self.decoded} bytes from {self.consumed} bytes of {self.encoding}",
                ratio,
            )
        yield out


def decode_file(source: IO[bytes], decoder: BodyDecoder, read_size: int = READ_SIZE) -> Iterator[bytes]:
    """The decoded pieces of a spooled encoded body, read ``read_size`` bytes at a time.

    Raises as ``BodyDecoder.feed`` and ``finish`` do, at the first excess:
    neither the encoded nor the decoded body is ever held whole.
    """
    while chunk := source.read(read_size):
        yield from decoder.feed(chunk)
    decoder.finish()
