"""The beater's request: bodies bounded while they arrive, decoded once a route has admitted them.

Twisted spools a body to a temporary file once it is over 100 kB, so memory
stays bounded; what this adds is the limit (refused at the first byte over
it, not after spooling everything) and ``Content-Encoding``.

The request's ``Route`` (``beater/http/routing.py``), decided from its
request line before the headers end, sets its bounds: ``max_body`` while the
body arrives and once decoded, ``max_ratio`` while decoding. An encoded body
is spooled as it arrives, still encoded, and decoded only when the whole
request is in: the site's ``BodyGate`` first says whether the route takes
this body at all. A refused request (no credentials, a content type the route does not
read) is answered without its body ever being decoded or parsed; an admitted
one is decoded chunk by chunk into a new spool, within the route's size and
compression-ratio bounds, stopping at the first byte past either. Handlers
only ever see the decoded body.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from io import BytesIO
from typing import IO, TYPE_CHECKING, Any, Protocol

from twisted.web.server import Request

from beater.http.content_encoding import (
    BodyDecoder,
    CorruptBody,
    DecodedTooLarge,
    RatioTooHigh,
    UnsupportedEncoding,
    decode_file,
    parse_encoding,
)
from common.contract import BODY_TOO_LARGE, UNREADABLE_BODY, UNSUPPORTED_ENCODING
from common.http import HTTPError, raw_json_response

if TYPE_CHECKING:
    from beater.http.routing import Route

#: Decoded bodies up to this size stay in memory, larger ones go to a temporary file (as Twisted does).
SPOOL_IN_MEMORY = 100_000


@dataclass(frozen=True)
class Bound:
    """A limit and the setting that sets it (named in a refusal)."""

    value: int
    setting: str = ""


class BodyGate(Protocol):
    """A site's ``body_gate``: admits bodies by route, hears of refusals (for metrics)."""

    def admit_body(self, request: LimitedRequest) -> HTTPError | None:
        """Once the request is in, before its body is decoded: a refusal (the body is dropped unread)."""
        ...

    def body_refused(self, limit: str) -> None: ...

    def early_refusal(self, request: LimitedRequest) -> HTTPError | None:
        """Once the headers are in, before any of the body is read: a refusal (credentials)."""
        ...


class BodyTooLarge(HTTPError):
    """413: the body passed a bound; ``limit`` says which ("max_body", "max_ratio")."""

    def __init__(self, limit: str, bound: Bound, reason: str) -> None:
        named = f"{reason} ({bound.setting})" if bound.setting else reason
        extra: dict[str, Any] = {"limit": bound.value}
        if bound.setting:
            extra["setting"] = bound.setting
        super().__init__(BODY_TOO_LARGE.status, BODY_TOO_LARGE.code, named, **extra)
        self.limit = limit


class LimitedRequest(Request):
    """Refuses bodies over the route's limit while they arrive; decodes admitted gzip/deflate bodies.

    ``refusal`` is set when the route refused the request before reading its
    body (the handler answers it); ``body_error`` when the body cannot be
    used (unknown encoding: 415, corrupt: 400, over a bound: 413). The
    handlers that read a body raise them.
    """

    #: where the request goes, set by the channel from the request line (``beater/sites.py``)
    route: Route | None = None
    _received = 0
    _refused = False
    refusal: HTTPError | None = None
    body_error: HTTPError | None = None
    #: ``Content-Encoding`` of the body as sent ("identity" when not encoded).
    encoding: str = "identity"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Twisted would parse multipart/form-data bodies itself and answer a
        # bare, non-JSON 400 on a malformed one; the body is ours to refuse.
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(*args, **kwargs)

    @property
    def max_body(self) -> int:
        """Bytes of body the route takes (raw and decoded); unrouted, the least the listener grants."""
        if self.route is not None:
            return self.route.max_body
        return int(self.channel.site.policy.smallest)

    def gotLength(self, length: int | None) -> None:
        # A body is coming: nothing of it is read (nor spooled) for credentials that are refused.
        if length != 0:
            early = self._gate().early_refusal(self)
            if early is not None:
                self._refused = True
                transport = self.channel.transport
                transport.write(
                    raw_json_response(
                        early.status,
                        _PHRASES.get(early.status, "Error"),
                        early.code,
                        early.reason,
                        early.headers,
                    )
                )
                transport.loseConnection()
                return
        if length is not None and length > self.max_body:
            self._refuse(f"request body is over the limit of {self.max_body} bytes")
            return
        try:
            self.encoding = parse_encoding(self._header("content-encoding"))
        except UnsupportedEncoding as exc:
            self.body_error = HTTPError.of(UNSUPPORTED_ENCODING, str(exc))
        super().gotLength(length)

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
        if self.body_error is not None:
            return  # the body is refused anyway; count it, keep none of it
        super().handleContentChunk(data)

    def _refuse(self, reason: str) -> None:
        self._refused = True
        self._gate().body_refused("max_body")
        transport = self.channel.transport
        transport.write(
            raw_json_response(BODY_TOO_LARGE.status, "Payload Too Large", BODY_TOO_LARGE.code, reason)
        )
        transport.loseConnection()

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._refused:
            return
        super().requestReceived(command, path, version)

    def process(self) -> None:
        """The request line and headers are in: admit the body (or not), decode it, then route."""
        refusal = self._gate().admit_body(self)
        if refusal is not None:
            self.refusal = refusal
            self._replace_content(BytesIO())
        elif self.body_error is None:
            self._read_body()
        super().process()

    def _gate(self) -> BodyGate:
        gate = getattr(getattr(self.channel, "site", None), "body_gate", None)
        return gate if gate is not None else _OPEN

    def _read_body(self) -> None:
        """Apply the route's bounds; an encoded body is decoded, a refused one dropped."""
        size = Bound(self.max_body)
        ratio = self.route.max_ratio if self.route is not None else None
        if self.encoding == "identity":
            if self._received > size.value:
                reason = f"request body is over the limit of {size.value} bytes"
                self._over(BodyTooLarge("max_body", size, reason))
            return
        try:
            self._decode(size, ratio)
        except RatioTooHigh as exc:
            self._over(BodyTooLarge("max_ratio", ratio or Bound(int(exc.value)), str(exc)))
        except DecodedTooLarge as exc:
            self._over(BodyTooLarge("max_body", size, str(exc)))
        except CorruptBody as exc:
            self.body_error = HTTPError.of(UNREADABLE_BODY, str(exc))
            self._replace_content(BytesIO())

    def _decode(self, size: Bound, ratio: Bound | None) -> None:
        """Decode the spooled body, chunk by chunk, into a new spool: the request's content from now on."""
        decoder = BodyDecoder(self.encoding, size.value, ratio.value if ratio is not None else None)
        # The spool outlives this call: it becomes the request's content.
        decoded: IO[bytes] = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY)  # noqa: SIM115
        # Spooled since gotLength: a body was received.
        assert self.content is not None
        try:
            for piece in decode_file(self.content, decoder):
                decoded.write(piece)
        except BaseException:
            decoded.close()
            raise
        self._replace_content(decoded)

    def _over(self, error: BodyTooLarge) -> None:
        self._gate().body_refused(error.limit)
        self.body_error = error
        self._replace_content(BytesIO())

    def _replace_content(self, content: IO[bytes]) -> None:
        if self.content is not None:
            self.content.close()
        content.seek(0)
        self.content = content


class _OpenGate:
    """A site without a gate: every body is admitted, within its route's bounds."""

    def admit_body(self, request: LimitedRequest) -> HTTPError | None:
        return None

    def body_refused(self, limit: str) -> None:
        pass

    def early_refusal(self, request: LimitedRequest) -> HTTPError | None:
        return None


_OPEN = _OpenGate()
_PHRASES = {401: "Unauthorized", 403: "Forbidden"}
