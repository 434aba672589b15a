"""Who is writing, and where they may write: the beater's one gate for ingest, bulk and pass-through.

Built at start-up from the access file and ``ESTROM_INGEST_TOKEN``
(``common/writers.py``). ``ESTROM_BULK_AUTH=engine`` is the one mode in
which credentials are not estrom's: the bulk API and the pass-through then
forward the shipper's ``Authorization`` and the engine judges it (its own
security must be on); estrom still refuses every write into its own and
hidden indices, in that mode too.
"""

from __future__ import annotations

from collections.abc import Mapping

from twisted.web.http import Request

from common.config import Settings
from common.http import HTTPError
from common.metrics import Metrics
from common.readers import OPEN_TARGETS, listen_interface
from common.writers import WriterIdentity, Writers, presented, write_refusal, writers_for

#: ``ESTROM_BULK_AUTH``: estrom checks writers (default), or the engine checks its own credentials.
AUTH_MODES = ("estrom", "engine")
#: Everything is writable but estrom's own and hidden indices: the engine-credentials mode's identity.
ENGINE_JUDGES = WriterIdentity("engine-credentials", OPEN_TARGETS)


class WriterGate:
    """Authenticates a request's writer and says what it may write."""

    def __init__(self, writers: Writers, own_prefix: str, metrics: Metrics, mode: str = "estrom") -> None:
        if mode not in AUTH_MODES:
            raise ValueError(f"ESTROM_BULK_AUTH must be one of {AUTH_MODES}, not {mode!r}")
        self.writers = writers
        self.own_prefix = own_prefix
        self.mode = mode
        self.metrics = metrics

    @classmethod
    def build(cls, settings: Settings, metrics: Metrics, env: Mapping[str, str]) -> WriterGate:
        """The gate of a beater's settings and environment; ReadersError where it must not start."""
        interfaces = [listen_interface(settings.beater_listen)]
        if settings.bulk_listen:
            interfaces.append(listen_interface(settings.bulk_listen))
        writers = writers_for(env, interfaces, settings.ingest_token)
        return cls(writers, settings.query_index_prefix, metrics, settings.bulk_auth)

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
            raise HTTPError(
                401,
                "unauthorized",
                "missing or wrong credentials: a writer's token (Bearer, or Basic/ApiKey with the "
                "writer's name), or ESTROM_INGEST_TOKEN",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return identity

    def refusal(self, identity: WriterIdentity, name: str) -> str | None:
        """Why ``identity`` may not write ``name`` (an index, alias, data stream or pattern); None if it may."""
        return write_refusal(identity, name, self.own_prefix)
