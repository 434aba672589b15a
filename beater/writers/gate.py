"""Who is writing, and where they may write: the beater's one gate for ingest, bulk and pass-through.

Built at start-up from the access file and ``ESTROM_INGEST_TOKEN``
(``common/access/writers.py``). ``ESTROM_BULK_AUTH=engine`` is the one mode in
which credentials are not estrom's: the bulk API and the pass-through then
forward the shipper's ``Authorization`` and the engine judges it (its own
security must be on); estrom still refuses every write into its own and
hidden indices, in that mode too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from twisted.web.http import Request

from beater.http.forwarder import EngineUnreachable
from beater.writers.aliases import WriteAliases
from common.access.exposure import listen_interface
from common.access.scopes import OPEN_TARGETS
from common.access.tokens import presented
from common.access.writers import WriterIdentity, Writers, write_refusal, writers_for
from common.config import Settings
from common.contract import WRITER_UNAUTHORIZED
from common.errors import RetryLater
from common.http import HTTPError
from common.metrics import Metrics

#: The prefix of a data stream's backing indices.
DATA_STREAM_BACKING = ".ds-"
#: Everything is writable but estrom's own and hidden indices: the engine-credentials mode's identity.
ENGINE_JUDGES = WriterIdentity("engine-credentials", OPEN_TARGETS)


class WriterGate:
    """Authenticates a request's writer and says what it may write."""

    def __init__(
        self,
        writers: Writers,
        own_prefix: str,
        metrics: Metrics,
        mode: str,
        aliases: WriteAliases | None = None,
        percolated_as: Callable[[str], str] = lambda name: name,
    ) -> None:
        self.writers = writers
        self.own_prefix = own_prefix
        self.mode = mode
        self.metrics = metrics
        #: Where writes through an alias land (None: names are taken as they are; unit tests).
        self.aliases = aliases
        #: The index an ingested document is matched as (the store's view of aliases: what decides matching).
        self.percolated_as = percolated_as

    @classmethod
    def build(
        cls,
        settings: Settings,
        metrics: Metrics,
        env: Mapping[str, str],
        aliases: WriteAliases | None = None,
        percolated_as: Callable[[str], str] = lambda name: name,
    ) -> WriterGate:
        """The gate of a beater's settings and environment; ReadersError where it must not start."""
        interfaces = [listen_interface(settings.beater_listen)]
        if settings.bulk_listen:
            interfaces.append(listen_interface(settings.bulk_listen))
        writers = writers_for(env, interfaces, settings.ingest_token)
        return cls(
            writers,
            settings.query_index_prefix,
            metrics,
            settings.bulk_auth,
            aliases,
            percolated_as,
        )

    @property
    def engine_judges(self) -> bool:
        """Whether credentials go to the engine (``ESTROM_BULK_AUTH=engine``) on the engine's API."""
        return self.mode == "engine"

    def identify(self, request: Request, *, engine_api: bool = False) -> WriterIdentity:
        """The request's writer; ``401`` for a credential that is nobody's, or none where one is needed.

        ``engine_api``: the bulk API or the pass-through, where the
        engine-credentials mode lets the engine decide.
        """
        if engine_api and self.engine_judges:
            return ENGINE_JUDGES
        identity = self.writers.authenticate(presented(request.getHeader(b"authorization")))
        if identity is None:
            self.metrics.inc("write_refusals_total", reason="unauthorized")
            raise HTTPError.of(
                WRITER_UNAUTHORIZED,
                "missing or wrong credentials: a writer's token (Bearer, or Basic/ApiKey with the "
                "writer's name), or ESTROM_INGEST_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return identity

    def refusal(self, identity: WriterIdentity, name: str) -> str | None:
        """Why ``identity`` may not write ``name`` (an index, alias, data stream or pattern); None if it may."""
        return write_refusal(identity, name, self.own_prefix)

    def ingest_refusal(self, identity: WriterIdentity, name: str) -> str | None:
        """Why ``identity`` may not ingest into ``name``: the name, and the index it is matched as.

        Ingest stores nothing; what matters is whose tails the documents
        reach, which the store's aliases decide (no engine request here).
        """
        reason = self.refusal(identity, name)
        if reason is not None:
            return reason
        concrete = self.percolated_as(name)
        # A data stream's backing index (``.ds-<stream>-000001``) is the stream's own: its name decides.
        if concrete != name and not concrete.startswith(DATA_STREAM_BACKING):
            behind = self.refusal(identity, concrete)
            if behind is not None:
                return f"[{name}] is an alias that writes into {behind}"
        return None

    async def refusals(self, identity: WriterIdentity, names: Iterable[str]) -> dict[str, str]:
        """``name -> why`` for each of ``names`` that ``identity`` may not write, through aliases too.

        A name inside the writer's targets that is an alias must also write
        into an index inside them: the engine is asked where it writes
        (``beater/writers/aliases.py``). An engine that cannot say is RetryLater (503).
        """
        refused: dict[str, str] = {}
        allowed: list[str] = []
        for name in names:
            reason = self.refusal(identity, name)
            if reason is None:
                allowed.append(name)
            else:
                refused[name] = reason
        if allowed and self.aliases is not None:
            try:
                behind = await self.aliases.resolve(allowed)
            except (LookupError, ValueError, EngineUnreachable) as exc:
                raise RetryLater(f"could not ask the engine where the writes' aliases lead: {exc}") from None
            for name, indices in behind.items():
                for index in indices.split(","):
                    reason = self.refusal(identity, index)
                    if reason is not None:
                        refused[name] = f"[{name}] is an alias that writes into {reason}"
                        break
        return refused
