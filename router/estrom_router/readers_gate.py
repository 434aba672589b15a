"""Readers at the router: ticket authentication, authorization by read target, subscription quotas.

An embedded component (router/config.json ``components``) that registers

- ``estrom.router.authenticate``: crossbar's dynamic WAMP-ticket authenticator.
  The ticket is a reader's token; the session's authid becomes the reader's
  name and its role ``reader``.
- ``estrom.router.authorize_browser``: the dynamic authorizer of the
  ``browser`` (anonymous) and ``reader`` roles. crossbar gives an authorizer
  the session, the URI, the action and the options, never a call's
  arguments, so calls of ``register_query``/``describe_query`` are allowed
  with the caller disclosed, and the beater asks ``estrom.router.admit``
  about the target before it acts. Subscriptions to ``docs-for-<sid>`` are
  decided here: the sid's target (learnt with ``describe_query``, cached)
  must be readable, and the identity must be under its subscription quota.
- ``estrom.router.admit(caller, action, index)``: the beater's question.
  Raises ``com.estrom.error.not_authorized`` or
  ``com.estrom.error.quota_exceeded`` (naming the limit and its value).
  ``action`` ``lookup`` is asked before a reader's ``describe_query`` costs
  the engine a search (the sid lookup quota); ``register`` and ``describe``
  about a target.

crossbar answers a refused subscription with its own
``wamp.error.not_authorized``: a dynamic authorizer cannot choose the URI
(crossbar 26.10.1, ``crossbar/router/broker.py`` lines 836-845: a denial is
always ``ApplicationError.NOT_AUTHORIZED``; an authorizer that raises, even an
ApplicationError of ours, becomes ``wamp.error.authorization_failed`` with a
critical log line and traceback, lines 1014-1028; a returned dict may only
hold ``allow``, ``cache``, ``disclose`` and ``validate``,
``crossbar/router/role.py`` line 472, anything else fails the same way).
``register_query`` refuses first with the precise estrom error when the
identity already holds its subscription quota, so clients that register
before they subscribe (all of ours) see which limit they hit.

The access file is re-read when it changes (``readers_file.py``); the
subscriptions counted against quotas are kept by crossbar's meta events
(``held_subscriptions.py``); the rules themselves are ``common/access/``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from twisted.logger import Logger

from common.access.callers import client_address, peer_host, quota_key
from common.access.quotas import CallerRates, ConcurrentCounter, QuotaExceeded, QuotaLimits
from common.access.readers import ANONYMOUS, Identity, may_read
from common.access.scopes import OWN_PREFIX
from common.contract import (
    DESCRIBE_QUERY,
    NO_SUCH_QUERY,
    NOT_AUTHENTICATED,
    NOT_AUTHORIZED,
    QUOTA_EXCEEDED,
    ROUTER_ADMIT,
    ROUTER_AUTHENTICATE,
    ROUTER_AUTHORIZE,
    TARGET_REACH,
    TOPIC_PREFIX,
    sid_of_topic,
)
from common.lazy_log_args import AUTOBAHN, CROSSBAR, install
from common.periodic import Periodic

from .authorizer import browser_may
from .held_subscriptions import HeldSubscriptions
from .metrics_page import NOT_AUTHORIZED as REFUSED
from .metrics_page import build_metrics, serve
from .readers_file import ReadersFile

log = Logger()

#: the role of sessions authenticated by a reader's token
READER_ROLE = "reader"
BROWSER_ROLE = "browser"
#: sids whose target we remember
TARGET_CACHE = 100_000
#: seconds between second looks at live subscriptions (ESTROM_ROUTER_ACCESS_RECHECK)
RECHECK_EVERY = 10.0


def over_quota(exc: QuotaExceeded) -> ApplicationError:
    """A limit reached, as the WAMP error that names it."""
    return ApplicationError(
        QUOTA_EXCEEDED.uri, str(exc), limit=exc.limit, value=exc.value, retry_after=exc.retry_after
    )


class ReadersGate(ApplicationSession):
    """Owns the readers, the quota state of the router, and the sid → target cache."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        # This component runs in the router worker: its debug arguments stop costing CPU at warn.
        log.debug("router.lazy_log_args", rebound=install({**AUTOBAHN, **CROSSBAR}))
        env = os.environ
        self.access = ReadersFile(env)
        #: estrom's own indices (the beaters' ESTROM_QUERY_INDEX_PREFIX): no reader's target names them
        self.own_prefix = env.get("ESTROM_QUERY_INDEX_PREFIX", "").strip() or OWN_PREFIX
        self.limits = QuotaLimits.from_env(env)
        self.rates = CallerRates.build(self.limits, self._now)
        self.held = HeldSubscriptions(ConcurrentCounter.subscriptions(self.limits, self.rates.refusals))
        self.targets: OrderedDict[str, str] = OrderedDict()
        self.polls = Periodic(self.access.poll, 1.0 if self.access.path else 0.0, "readers.reload")
        #: seconds between second looks at live subscriptions (``recheck``); 0: never
        recheck_every = float(env.get("ESTROM_ROUTER_ACCESS_RECHECK", "").strip() or RECHECK_EVERY)
        self.rechecks = Periodic(self.recheck, recheck_every, "readers.recheck")
        #: the router's /metrics (router/config.json's "metrics" path, metrics_page.py)
        self.metrics = build_metrics(self)
        serve(self)

    @staticmethod
    def _now() -> float:
        from twisted.internet import reactor

        return float(reactor.seconds())  # type: ignore[attr-defined]

    # --- lifecycle ----------------------------------------------------------------

    async def onJoin(self, details: Any) -> None:
        # crossbar starts the transports once this returns: nobody joins before we are here.
        await self.register(self._authorize, ROUTER_AUTHORIZE)
        await self.register(self._authenticate, ROUTER_AUTHENTICATE)
        await self.register(self._admit, ROUTER_ADMIT)
        await self.subscribe(self.held.on_create, "wamp.subscription.on_create")
        await self.subscribe(self.held.on_unsubscribe, "wamp.subscription.on_unsubscribe")
        await self.subscribe(self.held.on_delete, "wamp.subscription.on_delete")
        await self.subscribe(self.held.on_leave, "wamp.session.on_leave")
        self.polls.start()
        self.rechecks.start()
        log.info(
            "readers.ready readers={n} anonymous={anon}",
            n=len(self.access.readers.readers),
            anon=self.access.readers.anonymous is not None,
        )

    def onLeave(self, details: Any) -> None:
        # The router leaves and detaches its embedded sessions itself when it stops.
        self.polls.stop()
        self.rechecks.stop()

    # --- live subscriptions judged again ---------------------------------------------

    async def recheck(self) -> int:
        """Judge every held subscription again; remove (and tell) those refused now.

        A reader's subscription was admitted by its target's name and what
        its aliases reached then. Aliases change, and so does the access
        file: a subscription that would be refused now is removed with
        ``wamp.subscription.remove_subscriber``, whose UNSUBSCRIBED message
        carries the reason ``com.estrom.error.not_authorized``.
        """
        by_target: dict[str, list[tuple[int, str, str]]] = {}
        for session_id, uri, name in self.held.holders():
            target = self.targets.get(uri.removeprefix(TOPIC_PREFIX))
            if target is not None:
                by_target.setdefault(target, []).append((session_id, uri, name))
        subscription_of = self.held.subscription_of()
        removed = 0
        for target, holders in by_target.items():
            try:
                behind = await self.call(TARGET_REACH, target)
            except ApplicationError as exc:  # no beater, or no engine: judged again next time
                log.debug("readers.reach_unknown target={t} error={e}", t=target, e=exc.error)
                continue
            for session_id, uri, name in holders:
                sub_id = subscription_of.get(uri)
                if sub_id is None or self._still_readable(name, target, behind):
                    continue
                try:
                    await self.call(
                        "wamp.subscription.remove_subscriber", sub_id, session_id, reason=NOT_AUTHORIZED.uri
                    )
                except ApplicationError as exc:  # gone meanwhile
                    log.debug("readers.remove_failed error={e}", e=exc.error)
                    continue
                removed += 1
                log.info("readers.subscription_removed reader={r} target={t}", r=name, t=target)
        return removed

    def _still_readable(self, name: str, target: str, behind: list[str]) -> bool:
        identity = self.access.readers.identity(name)
        if identity is None or not may_read(identity, target, self.own_prefix):
            return False
        return not behind or may_read(identity, ",".join(behind), self.own_prefix)

    # --- who is this ----------------------------------------------------------------

    def _identity_of(self, session: Mapping[str, Any]) -> tuple[Identity | None, str]:
        """The identity of a session (by its role and authid) and its quota key."""
        role = session.get("authrole")
        readers = self.access.readers
        if role == READER_ROLE:
            identity = readers.identity(str(session.get("authid")))
        elif role == BROWSER_ROLE:
            identity = readers.anonymous
        else:
            identity = None
        name = identity.name if identity else str(session.get("authid"))
        transport = session.get("transport") or {}
        peer = peer_host(str(transport.get("peer") or ""))
        headers = transport.get("http_headers_received") or {}
        address = client_address(peer, headers.get("x-forwarded-for"), self.limits.trusted_proxies)
        return identity, quota_key(name, address)

    def _remember(self, session: Mapping[str, Any]) -> tuple[Identity | None, str]:
        identity, key = self._identity_of(session)
        if identity is not None:
            self.held.remember(session.get("session"), identity.name, key)
        return identity, key

    # --- authentication ---------------------------------------------------------------

    def _authenticate(self, realm: str, authid: str | None, details: Mapping[str, Any]) -> dict[str, Any]:
        identity = self.access.readers.authenticate(str(details.get("ticket") or "") or "\0none")
        if identity is None:
            raise ApplicationError(NOT_AUTHENTICATED.uri, "no reader has this token")
        if authid and authid != identity.name:
            raise ApplicationError(
                NOT_AUTHENTICATED.uri, "the token belongs to another reader than the authid"
            )
        return {"authid": identity.name, "role": READER_ROLE}

    # --- authorization --------------------------------------------------------------

    async def _authorize(
        self, session: Mapping[str, Any], uri: str, action: str, options: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        with self.metrics.timer("authorize_seconds", action=action):
            decision = await self._decide(session, uri, action, options)
        quota = decision.pop("quota", False)  # counted under its limit already
        if not decision["allow"] and not quota:
            self.rates.refusals.count_reason(REFUSED)
        return decision

    async def _decide(
        self, session: Mapping[str, Any], uri: str, action: str, options: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """crossbar's answer (``allow``, ``cache``, ``disclose``), and ``quota`` when a limit refused."""
        identity, key = self._remember(session)
        deny = {"allow": False, "cache": False, "disclose": False}
        if identity is None or not browser_may(uri, action, options):
            return deny
        if action == "call":
            # Never cached: every call must pass here so that the session is known to admit().
            return {"allow": True, "cache": False, "disclose": True}
        sid = sid_of_topic(uri)
        if sid is None:
            return deny
        try:
            if sid not in self.targets:  # learning the target costs a lookup in the query store
                self.rates.describes.take(key)
            target = await self._target_of(sid)
            if target is None or not may_read(identity, target, self.own_prefix):
                return deny
            self.held.hold(int(session["session"]), uri, key)
        except QuotaExceeded as exc:  # counted by the bucket or the counter, under its limit
            log.debug("readers.quota key={key} limit={limit}", key=key, limit=exc.limit)
            return {**deny, "quota": True}
        return {"allow": True, "cache": False}

    async def _target_of(self, sid: str) -> str | None:
        if sid in self.targets:
            self.targets.move_to_end(sid)
            return self.targets[sid]
        try:
            found = await self.call(DESCRIBE_QUERY, sid)
        except ApplicationError as exc:
            if exc.error != NO_SUCH_QUERY.uri:
                log.warn("readers.describe_failed sid={sid} error={error}", sid=sid, error=exc.error)
            return None
        index = found.get("index") if isinstance(found, dict) else None
        if not isinstance(index, str):
            return None
        self.targets[sid] = index
        if len(self.targets) > TARGET_CACHE:
            self.targets.popitem(last=False)
        return index

    # --- the beater's question --------------------------------------------------------

    def _admit(self, caller: Any, action: str, index: Any) -> None:
        with self.metrics.timer("authorize_seconds", action="admit"):
            try:
                self._check_admit(caller, action, index)
            except QuotaExceeded as exc:
                raise over_quota(exc) from None

    def _check_admit(self, caller: Any, action: str, index: Any) -> None:
        known = self.held.sessions.get(caller) if isinstance(caller, int) else None
        if known is None:
            self.rates.refusals.count_reason(REFUSED)
            raise ApplicationError(NOT_AUTHORIZED.uri, "the router does not know this caller")
        name, key = known
        if action == "lookup":  # before any target is known: only the caller's lookup quota
            self.rates.describes.take(key)
            return
        readers = self.access.readers
        identity = readers.identity(name) if name != ANONYMOUS else readers.anonymous
        if identity is None or not isinstance(index, str) or not may_read(identity, index, self.own_prefix):
            self.rates.refusals.count_reason(REFUSED)
            raise ApplicationError(NOT_AUTHORIZED.uri, f"{name} may not read {index!r}")
        if action == "register":
            self.held.counter.check_room(key)
            self.rates.registrations.take(key)
