"""Forwarding one HTTP request to the engine with Twisted's Agent, bodies streamed both ways.

The request body goes out from the spool it was received into (a temporary
file past 100 kB) through a ``FileBodyProducer``; the engine's answer is
spooled the same way (in memory up to ``SPOOL_IN_MEMORY``, then a temporary
file). A 100 MB bulk request therefore costs a few buffers of memory, not
copies of the body.
"""

from __future__ import annotations

import base64
import io
import json
import tempfile
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from common.errors import RetryLater

#: Engine answers up to this size stay in memory; larger ones go to a temporary file.
SPOOL_IN_MEMORY = 1024 * 1024
#: Bytes read from the body spool per write to the engine.
READ_SIZE = 64 * 1024

#: Connection-level headers, never forwarded (RFC 9110 7.6.1), and those the
#: Agent or our own framing sets.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
    }
)


class EngineUnreachable(RetryLater):
    """No answer from the engine: nothing was stored (HTTP 503)."""


@dataclass
class EngineAnswer:
    """The engine's status, headers and body (spooled, positioned at its start)."""

    status: int
    phrase: bytes
    headers: Headers
    body: IO[bytes]
    length: int


def forwarded_headers(headers: Headers, drop: frozenset[bytes] = frozenset()) -> Headers:
    """The request's headers minus hop-by-hop ones and ``drop``."""
    out = Headers()
    for name, values in headers.getAllRawHeaders():
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in drop:
            continue
        out.setRawHeaders(name, values)
    return out


class _KeptOpen:
    """A view of a file that ``FileBodyProducer`` may close without closing it: it is read again after."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file

    def read(self, size: int = -1) -> bytes:
        return self.file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def close(self) -> None:
        pass


class _Spool(Protocol):
    """Receives a response body into a spooled temporary file."""

    def __init__(self, done: Deferred[IO[bytes]]) -> None:
        self.done = done
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115

    def dataReceived(self, data: bytes) -> None:
        self.file.write(data)

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        if reason.check(ResponseDone, PotentialDataLoss):
            self.file.seek(0)
            self.done.callback(self.file)
        else:
            self.file.close()
            self.done.errback(reason)


class EngineForwarder:
    """Sends requests to one engine node over a pool of persistent connections."""

    def __init__(self, reactor: Any, engine_url: str, timeout: float) -> None:
        parts = urlsplit(engine_url)
        self.authorization: bytes | None = None
        if parts.username is not None:
            # Credentials in ESTROM_ENGINE_URL: used when the sender presented estrom's token instead.
            secret = f"{parts.username}:{parts.password or ''}".encode()
            self.authorization = b"Basic " + base64.b64encode(secret)
            parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
        self.base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", "")).encode()
        self.reactor = reactor
        self.timeout = timeout
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = 16
        self.agent = Agent(reactor, pool=pool, connectTimeout=min(timeout, 5.0))

    async def forward(
        self, method: bytes, path: bytes, headers: Headers, body: IO[bytes] | None
    ) -> EngineAnswer:
        """Send ``method path`` with ``body`` (read from its current position); the whole answer, spooled.

        Raises EngineUnreachable when the engine cannot be reached or does
        not answer within the timeout.
        """
        producer = FileBodyProducer(_KeptOpen(body), readSize=READ_SIZE) if body is not None else None
        request = self.agent.request(method, self.base + path, headers, producer)
        request.addTimeout(self.timeout, self.reactor)
        try:
            response: IResponse = await request
            done: Deferred[IO[bytes]] = Deferred()
            response.deliverBody(_Spool(done))
            done.addTimeout(self.timeout, self.reactor)
            spooled = await done
        except Exception as exc:
            raise EngineUnreachable(f"engine did not answer: {exc.__class__.__name__}: {exc}") from exc
        spooled.seek(0, 2)
        length = spooled.tell()
        spooled.seek(0)
        return EngineAnswer(response.code, response.phrase, response.headers, spooled, length)

    async def get(self, path: str) -> tuple[int, bytes]:
        """``GET path`` with estrom's own engine credentials: the status and the whole (small) body."""
        return await self.ask(b"GET", path, None)

    async def post(self, path: str, payload: Any) -> tuple[int, bytes]:
        """``POST path`` of a JSON ``payload``, with estrom's own engine credentials: status and body."""
        return await self.ask(b"POST", path, json.dumps(payload, separators=(",", ":")).encode())

    async def ask(self, method: bytes, path: str, body: bytes | None) -> tuple[int, bytes]:
        """One request of estrom's own (not a shipper's): the status and the whole answer."""
        headers = Headers({b"accept": [b"application/json"]})
        if body is not None:
            headers.setRawHeaders(b"content-type", [b"application/json"])
        if self.authorization is not None:
            headers.setRawHeaders(b"authorization", [self.authorization])
        answer = await self.forward(
            method, path.encode(), headers, None if body is None else io.BytesIO(body)
        )
        try:
            return answer.status, answer.body.read()
        finally:
            answer.body.close()
