"""The beater's request: bodies bounded while they arrive, decoded as they arrive.

Twisted spools a body to a temporary file once it is over 100 kB, so memory
stays bounded; what this adds is the limit (refused at the first byte over
it, not after spooling everything) and ``Content-Encoding``: gzip and
deflate bodies are decoded chunk by chunk into the spool, the limit applying
to the decoded size too, so handlers only ever see the decoded body.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from beater.content_encoding import (
    BodyDecoder,
    CorruptBody,
    DecodedTooLarge,
    UnsupportedEncoding,
    parse_encoding,
)
from common.http import HTTPError, raw_json_response


class LimitedRequest(Request):
    """Refuses bodies over the limit while they arrive; decodes gzip/deflate into the spool.

    ``body_error`` is set when the body cannot be used (unknown encoding:
    415, corrupt: 400); the handlers that read a body raise it.
    """

    max_body: int = 64 * 1024 * 1024
    _received = 0
    _refused = False
    _decoder: BodyDecoder | None = None
    body_error: HTTPError | None = None
    #: ``Content-Encoding`` of the body as sent ("identity" when not encoded).
    encoding: str = "identity"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Twisted would parse multipart/form-data bodies itself and answer a
        # bare, non-JSON 400 on a malformed one; the body is ours to refuse.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse(f"request body is over the limit of {self.max_body} bytes")
            return
        try:
            self.encoding = parse_encoding(self._header("content-encoding"))
        except UnsupportedEncoding as exc:
            self.body_error = HTTPError(415, "unsupported_encoding", str(exc))
        else:
            self._decoder = BodyDecoder(self.encoding, self.max_body)
        # An encoded body's decoded size is unknown: let Twisted spool it to a file.
        super().gotLength(length if self.encoding == "identity" else None)

    def _header(self, name: str) -> str | None:
        value = self.requestHeaders.getRawHeaders(name.encode())
        return ", ".join(v.decode("latin-1") for v in value) if value else None

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse(f"request body is over the limit of {self.max_body} bytes")
            return
        if self._decoder is None:
            return  # the body is refused anyway (body_error); count it, keep none of it
        try:
            for piece in self._decoder.feed(data):
                super().handleContentChunk(piece)
        except DecodedTooLarge as exc:
            self._refuse(str(exc))
        except CorruptBody as exc:
            self._fail(exc)

    def _fail(self, exc: CorruptBody) -> None:
        self._decoder = None
        self.body_error = HTTPError(400, "unreadable_body", str(exc))

    def _refuse(self, reason: str) -> None:
        self._refused = True
        transport = self.channel.transport
        transport.write(raw_json_response(413, "Payload Too Large", "body_too_large", reason))
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        if self._decoder is not None:
            try:
                self._decoder.finish()
            except CorruptBody as exc:
                self._fail(exc)
        super().requestReceived(command, path, version)

    def body_size(self) -> int:
        """Bytes of the (decoded) body spooled so far."""
        return self._decoder.decoded if self._decoder is not None else 0


def request_factory(max_body: int) -> type[LimitedRequest]:
    """A request class bounded by ``max_body`` bytes (raw and decoded)."""

    class _Request(LimitedRequest):
        pass

    _Request.max_body = max_body
    return _Request
