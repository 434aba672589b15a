"""Live tails and counts judged again: a target that comes to reach what its reader may not read ends.

A reader's target is admitted when its stream opens, by its name and by the
indices behind the aliases it covers. Aliases change after that (an index
added to ``public-all``), and so does the access file (SIGHUP). Every
``ESTROM_TAILOR_ACCESS_RECHECK`` seconds the targets of the open streams are
resolved again (one alias lookup per distinct target) and each stream's
reader, as the access file names it now, is asked again: a stream that would
be refused now ends with ``"error": "not_authorized"`` (its format's error
ending: the JSON document's member, NDJSON's line, SSE's ``end`` event).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from common.access.readers import Identity, may_read
from common.aliases import AliasLookup
from common.contract import NOT_AUTHORIZED
from common.periodic import Periodic

log = Logger()


class Endable(Protocol):
    def fail(self, error: str, reason: str) -> None: ...


class AccessWatch:
    """The open streams' readers and targets, and their periodic second look."""

    def __init__(
        self,
        identity_of: Callable[[str], Identity | None],
        aliases: AliasLookup,
        own_prefix: str,
        clock: IReactorTime,
        interval: float,
        on_refused: Callable[[], None] = lambda: None,
    ) -> None:
        self.identity_of = identity_of
        self.aliases = aliases
        self.own_prefix = own_prefix
        self.clock = clock
        self.interval = interval
        self.on_refused = on_refused
        #: stream -> (its reader's name, its target)
        self.watched: dict[Endable, tuple[str, str]] = {}
        self.looks = Periodic(self.recheck, interval, "access.recheck", clock)

    def watch(self, stream: Endable, reader: str, target: str) -> None:
        self.watched[stream] = (reader, target)

    def forget(self, stream: Endable) -> None:
        self.watched.pop(stream, None)

    def start(self) -> None:
        """Look again every ``interval`` seconds (0: never)."""
        self.looks.start()

    def stop(self) -> None:
        self.looks.stop()

    async def recheck(self) -> int:
        """Judge every watched stream again; how many were ended."""
        by_target: dict[str, list[tuple[Endable, str]]] = {}
        for stream, (reader, target) in list(self.watched.items()):
            by_target.setdefault(target, []).append((stream, reader))
        ended = 0
        for target, streams in by_target.items():
            try:
                behind = await self.aliases(target, self.own_prefix)
            except Exception as exc:  # the engine's trouble: judged again next time
                log.debug("access.aliases_unread", target=target, error=str(exc))
                continue
            for stream, reader in streams:
                if stream not in self.watched or self._allowed(reader, target, behind):
                    continue
                self.forget(stream)
                stream.fail(
                    NOT_AUTHORIZED.code,
                    f"{target!r} now reaches what {reader} may not read (an alias or the access file changed)",
                )
                self.on_refused()
                ended += 1
        return ended

    def _allowed(self, reader: str, target: str, behind: list[str]) -> bool:
        identity = self.identity_of(reader)
        if identity is None or not may_read(identity, target, self.own_prefix):
            return False
        return not behind or may_read(identity, ",".join(behind), self.own_prefix)
