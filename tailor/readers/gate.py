"""Readers at the tailor: who is asking (401), may they read this target (403), and how much (429).

Slotted before the tailor resolves a request, so nothing is registered or
searched for a caller who may not: ``i=`` targets are checked before the
registration, ``s=`` sids after their description (refused as 404, the
contract's "a sid you may not read does not exist"). The token comes from
``Authorization: Bearer`` or ``?token=`` (for EventSource) and is never
logged. The readers file is re-read on SIGHUP.

The tailor registers and describes queries as its own principal, so the
router's per-identity buckets never see its callers: the tailor keeps them
itself, per process, for the same limits (``ESTROM_QUOTA_REGISTRATIONS_*``
for each registration a tail or count makes, ``ESTROM_QUOTA_DESCRIBES_*``
for each ``s=`` lookup it sends on), beside the concurrent tails.

There is always a gate: the tailor's API takes one at construction, so no
tailor serves a read without one deciding.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from twisted.logger import Logger
from twisted.web.http import Request

from common.access.access_file import ReadersHolder, access_file, readers_for
from common.access.callers import client_address, quota_key
from common.access.exposure import listen_interface
from common.access.quotas import CallerRates, ConcurrentCounter, QuotaExceeded, QuotaLimits
from common.access.readers import Identity, may_read
from common.access.scopes import OWN_PREFIX
from common.access.tokens import bearer_token
from common.contract import NO_SUCH_QUERY, NOT_AUTHENTICATED, NOT_AUTHORIZED, QUOTA_EXCEEDED
from common.http import HTTPError

log = Logger()

#: the largest users /metrics shows
TOP = 10


class ReaderGate:
    """The tailor's readers, its concurrent-tail counter and its refusal counts."""

    def __init__(
        self,
        holder: ReadersHolder,
        limits: QuotaLimits,
        retry_after: int,
        clock: Callable[[], float] = time.monotonic,
        own_prefix: str = OWN_PREFIX,
    ) -> None:
        self.holder = holder
        #: estrom's own indices: no reader's target may name them
        self.own_prefix = own_prefix
        self.limits = limits
        self.retry_after = retry_after
        self.rates = CallerRates.build(limits, clock)
        self.tails = ConcurrentCounter.tails(limits, self.rates.refusals)

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        listen: str,
        retry_after: int,
        quotas: QuotaLimits,
        own_prefix: str = OWN_PREFIX,
    ) -> ReaderGate:
        """The readers of the access file ``env`` names, with ``quotas`` (``Settings.quotas``).

        ReadersError when the tailor must not start (it says why).
        """
        readers = readers_for(env, [listen_interface(listen)], "tailor")
        return cls(ReadersHolder(readers, access_file(env)), quotas, retry_after, own_prefix=own_prefix)

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
            raise HTTPError.of(
                NOT_AUTHENTICATED, reason, headers={"WWW-Authenticate": 'Bearer realm="estrom"'}
            )
        return identity

    def check(self, identity: Identity, target: str, *, as_missing_sid: str | None = None) -> None:
        """403 (or 404 for a sid) unless ``identity`` may read everything ``target`` could cover."""
        if may_read(identity, target, self.own_prefix):
            return
        if as_missing_sid is not None:
            raise HTTPError.of(NO_SUCH_QUERY, f"no query with sid {as_missing_sid!r}")
        raise HTTPError.of(NOT_AUTHORIZED, f"{identity.name} may not read {target!r}")

    def key(self, identity: Identity, request: Request) -> str:
        peer = request.getClientAddress()
        host = str(getattr(peer, "host", "") or "")
        forwarded = request.getHeader(b"x-forwarded-for")
        address = client_address(
            host, forwarded.decode("latin-1") if forwarded else None, self.limits.trusted_proxies
        )
        return quota_key(identity.name, address)

    def too_many(self, exc: QuotaExceeded) -> HTTPError:
        """A limit reached, as the 429 that names it (with Retry-After)."""
        return HTTPError.of(
            QUOTA_EXCEEDED,
            str(exc),
            headers={"Retry-After": str(max(exc.retry_after, self.retry_after))},
            limit=exc.limit,
            value=exc.value,
        )

    def hold_tail(self, key: str) -> None:
        """One concurrent tail for ``key``, or 429 naming the limit."""
        try:
            self.tails.acquire(key)
        except QuotaExceeded as exc:
            raise self.too_many(exc) from None

    def release_tail(self, key: str) -> None:
        self.tails.release(key)

    def charges(self, key: str) -> Charges:
        """What ``key``'s registrations and lookups cost it, for the resolver."""
        return Charges(self, key)


class Charges:
    """One caller's registration and lookup buckets: each call takes a token, or raises 429."""

    def __init__(self, gate: ReaderGate, key: str) -> None:
        self.gate = gate
        self.key = key

    def registration(self) -> None:
        try:
            self.gate.rates.registrations.take(self.key)
        except QuotaExceeded as exc:
            raise self.gate.too_many(exc) from None

    def describe(self) -> None:
        try:
            self.gate.rates.describes.take(self.key)
        except QuotaExceeded as exc:
            raise self.gate.too_many(exc) from None


class TopTails:
    """``estrom_tailor_reader_top_tails{key}``: concurrent tails and counts of the largest users.

    A collector for the tailor's registry, read at each scrape; only the
    ``TOP`` largest keys (a reader, or ``anonymous@<address>``), so the page
    stays small however many addresses come.
    """

    def __init__(self, gate: Callable[[], ReaderGate]) -> None:
        self.gate = gate

    def collect(self) -> Iterator[Metric]:
        top = GaugeMetricFamily(
            "estrom_tailor_reader_top_tails",
            f"Concurrent tails and counts held by the {TOP} largest users (reader, or anonymous@address).",
            labels=["key"],
        )
        for key, n in self.gate().tails.top(TOP):
            top.add_metric([key], n)
        yield top
