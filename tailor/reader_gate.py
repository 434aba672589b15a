"""Readers at the tailor: who is asking (401), may they read this target (403), and how much (429).

Slotted before the tailor resolves a request, so nothing is registered or
searched for a caller who may not: ``i=`` targets are checked before the
registration, ``s=`` sids after their description (refused as 404, the
contract's "a sid you may not read does not exist"). The token comes from
``Authorization: Bearer`` or ``?token=`` (for EventSource) and is never
logged. The readers file is re-read on SIGHUP.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.logger import Logger
from twisted.web.http import Request

from common.http import HTTPError
from common.quotas import ConcurrentCounter, QuotaExceeded, QuotaLimits, Refusals, client_address, quota_key
from common.readers import Identity, ReadersHolder, bearer_token, listen_interface, may_read, readers_for

log = Logger()

#: the largest users /metrics shows
TOP = 10


class ReaderGate:
    """The tailor's readers, its concurrent-tail counter and its refusal counts."""

    def __init__(self, holder: ReadersHolder, limits: QuotaLimits, retry_after: int) -> None:
        self.holder = holder
        self.limits = limits
        self.retry_after = retry_after
        self.refusals = Refusals()
        self.tails = ConcurrentCounter(
            limits.tails, limits.tails_total, "ESTROM_QUOTA_TAILS", "ESTROM_QUOTA_TAILS_TOTAL", self.refusals
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], listen: str, retry_after: int) -> ReaderGate:
        """ReadersError / ValueError when the tailor must not start (they say why)."""
        readers = readers_for(env, [listen_interface(listen)], "tailor")
        return cls(
            ReadersHolder(readers, env.get("ESTROM_READERS", "").strip()),
            QuotaLimits.from_env(env),
            retry_after,
        )

    def reload_on_sighup(self, reactor: Any) -> None:
        def reload(_signum: int, _frame: Any) -> None:
            reactor.callFromThread(self._reload)

        signal.signal(signal.SIGHUP, reload)

    def _reload(self) -> None:
        problem = self.holder.reload()
        if problem:
            log.warn("readers.reload_failed", reason=problem)
        else:
            log.info("readers.reloaded", readers=len(self.holder.readers.readers))

    def identify(self, request: Request, query_token: str | None) -> Identity:
        """The caller, or 401 (no token where there is no anonymous reader, or a wrong one)."""
        header = request.getHeader(b"authorization")
        token = bearer_token(header.decode("latin-1") if header else None, query_token)
        identity = self.holder.readers.authenticate(token)
        if identity is None:
            reason = "a token is required" if token is None else "the token is not a reader's"
            raise HTTPError(
                401, "not_authorized", reason, headers={"WWW-Authenticate": 'Bearer realm="estrom"'}
            )
        return identity

    def check(self, identity: Identity, target: str, *, as_missing_sid: str | None = None) -> None:
        """403 (or 404 for a sid) unless ``identity`` may read everything ``target`` could cover."""
        if may_read(identity, target):
            return
        if as_missing_sid is not None:
            raise HTTPError(404, "no_such_query", f"no query with sid {as_missing_sid!r}")
        raise HTTPError(403, "not_authorized", f"{identity.name} may not read {target!r}")

    def key(self, identity: Identity, request: Request) -> str:
        peer = request.getClientAddress()
        host = str(getattr(peer, "host", "") or "")
        forwarded = request.getHeader(b"x-forwarded-for")
        address = client_address(
            host, forwarded.decode("latin-1") if forwarded else None, self.limits.trusted_proxies
        )
        return quota_key(identity.name, address)

    def hold_tail(self, key: str) -> None:
        """One concurrent tail for ``key``, or 429 naming the limit."""
        try:
            self.tails.acquire(key)
        except QuotaExceeded as exc:
            raise HTTPError(
                429,
                "quota_exceeded",
                str(exc),
                headers={"Retry-After": str(max(exc.retry_after, self.retry_after))},
                limit=exc.limit,
                value=exc.value,
            ) from None

    def release_tail(self, key: str) -> None:
        self.tails.release(key)


class TopTails:
    """``estrom_tailor_reader_top_tails{key}``: concurrent tails and counts of the largest users.

    A collector for the tailor's registry, read at each scrape; only the
    ``TOP`` largest keys (a reader, or ``anonymous@<address>``), so the page
    stays small however many addresses come. Nothing while no gate is set.
    """

    def __init__(self, gate: Callable[[], ReaderGate | None]) -> None:
        self.gate = gate

    def collect(self) -> Iterator[Metric]:
        top = GaugeMetricFamily(
            "estrom_tailor_reader_top_tails",
            f"Concurrent tails and counts held by the {TOP} largest users (reader, or anonymous@address).",
            labels=["key"],
        )
        gate = self.gate()
        for key, n in gate.tails.top(TOP) if gate is not None else ():
            top.add_metric([key], n)
        yield top
