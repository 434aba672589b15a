"""What a tail and a count stream share on their way from a request to a started stream.

Both check the request, admit and resolve it (``ReaderAdmission``: the reader
identified, its target allowed, a tail slot held until the request finishes),
open their stream, join what feeds it and fetch what it sends first, and only
then answer 200. Until then every failure is a plain HTTP error and the stream
is let go without lingering; after it, the stream ends itself and calls back.
Each endpoint (tailor/tails/endpoint.py, tailor/counts/endpoint.py) keeps only
what differs: its parameters, its stream, what it joins and sends first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from twisted.web.http import Request

from common.http import HTTPError
from common.metrics import Metrics
from tailor.queries.params import BadParameter
from tailor.queries.resolve import Resolved
from tailor.readers.access_watch import AccessWatch
from tailor.readers.admission import ReaderAdmission
from tailor.streaming.request_watch import RequestWatch


class StreamAsk(Protocol):
    """A streaming request's parameters, as far as admitting and resolving it needs them."""

    @property
    def index(self) -> str | None: ...
    @property
    def query(self) -> Any: ...
    @property
    def sid(self) -> str | None: ...
    @property
    def format(self) -> str: ...


class OpenedStream(Protocol):
    """A stream between its opening and its start: it can be let go, or ended by the access watch."""

    def abandon(self) -> None: ...
    def fail(self, error: str, reason: str) -> None: ...


AskT = TypeVar("AskT", bound=StreamAsk)
StreamT = TypeVar("StreamT", bound=OpenedStream)


class StreamEndpoint(ABC, Generic[AskT, StreamT]):
    """One kind of stream: each request's way to it, and the streams of that kind open now."""

    #: the counter of streams started, by format
    started_total: ClassVar[str]
    admission: ReaderAdmission
    access: AccessWatch
    metrics: Metrics
    streams: set[StreamT]

    async def handle(self, request: Request, watch: RequestWatch) -> None:
        """Check, admit, resolve, open, prepare, start; a failure before the start lets the stream go."""
        try:
            ask = self._parse(request)
        except BadParameter as exc:
            raise HTTPError.of(exc.error, exc.reason) from None
        target, reader = await self.admission.resolve(request, ask.sid, ask.index, ask.query)
        stream = self._new_stream(request, watch, ask, target.sid)
        self.streams.add(stream)
        self.access.watch(stream, reader.name, target.index)
        try:
            start = await self._prepare(stream, target, ask)
        except BaseException:
            self._abandon(target.sid, ask, stream)
            raise
        self.metrics.inc(self.started_total, format=ask.format)
        start()

    @abstractmethod
    def _parse(self, request: Request) -> AskT:
        """The request's parameters; BadParameter (a 400) when they are not right."""

    @abstractmethod
    def _new_stream(self, request: Request, watch: RequestWatch, ask: AskT, sid: str) -> StreamT:
        """The stream, holding until started; its ``on_gone`` is ``self._on_gone(sid, ask)``."""

    @abstractmethod
    async def _prepare(self, stream: StreamT, target: Resolved, ask: AskT) -> Callable[[], None]:
        """Join the stream to what feeds it and fetch what it sends first; what then starts it."""

    @abstractmethod
    def _leave(self, sid: str, ask: AskT, stream: StreamT, *, abandoned: bool) -> None:
        """Detach the stream from what feeds it; ``abandoned``: never started (an HTTP error)."""

    def _on_gone(self, sid: str, ask: AskT) -> Callable[[StreamT], None]:
        """A new stream's ``on_gone``: it is forgotten and leaves what fed it."""

        def gone(stream: StreamT) -> None:
            self._forget(stream)
            self._leave(sid, ask, stream, abandoned=False)

        return gone

    def _abandon(self, sid: str, ask: AskT, stream: StreamT) -> None:
        # Left first, without lingering: the ``on_gone`` that ``abandon`` calls finds nothing left.
        self._forget(stream)
        self._leave(sid, ask, stream, abandoned=True)
        stream.abandon()

    def _forget(self, stream: StreamT) -> None:
        self.streams.discard(stream)
        self.access.forget(stream)
