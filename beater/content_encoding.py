"""Decoding compressed request bodies as they arrive, within a size budget.

Logstash's ``http`` output (``http_compression => true``) and most bulk
shippers send ``Content-Encoding: gzip``; some send ``deflate``. The body
limit applies to the decoded size as well: a few kilobytes of gzip may
expand to gigabytes, so the decoder never produces more than a bounded step
at a time and stops as soon as the decoded total passes the budget.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

#: Largest piece of decoded output produced at once, whatever one network chunk expands to.
STEP = 256 * 1024

#: Encodings estrom decodes, as they appear in ``Content-Encoding``.
KNOWN = ("gzip", "x-gzip", "deflate", "identity")


class UnsupportedEncoding(ValueError):
    """A ``Content-Encoding`` estrom does not decode (HTTP 415)."""


class DecodedTooLarge(ValueError):
    """The decoded body passes the budget (HTTP 413)."""


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
    """Feeds encoded chunks, yields decoded pieces; ``budget`` bounds the decoded total."""

    def __init__(self, encoding: str, budget: int) -> None:
        self.encoding = encoding
        self.budget = budget
        self.decoded = 0
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
            raise DecodedTooLarge(f"decoded request body is over the limit of {self.budget} bytes")
        yield out
