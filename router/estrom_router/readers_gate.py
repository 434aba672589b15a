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

The readers file (``ESTROM_READERS``) is re-read when it changes (crossbar's
node controller owns the router's signals, so the router polls the file
instead of waiting for SIGHUP).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from autobahn.twisted.wamp import ApplicationSession
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

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
from common.quotas import (
    ConcurrentCounter,
    DescribeRate,
    QuotaExceeded,
    QuotaLimits,
    Refusals,
    RegistrationRate,
    client_address,
    peer_host,
    quota_key,
)
from common.readers import (
    ANONYMOUS,
    OWN_PREFIX,
    Identity,
    Readers,
    ReadersError,
    access_file,
    load_readers,
    may_read,
)

from .authorizer import browser_may
from .metrics_page import NOT_AUTHORIZED as REFUSED
from .metrics_page import build_metrics, serve

log = Logger()

#: the role of sessions authenticated by a reader's token
READER_ROLE = "reader"
BROWSER_ROLE = "browser"
#: sids whose target we remember
TARGET_CACHE = 100_000
#: seconds between second looks at live subscriptions (ESTROM_ROUTER_ACCESS_RECHECK)
RECHECK_EVERY = 10.0


def _readers_from_env(env: Mapping[str, str]) -> tuple[Readers, str]:
    path = access_file(env)
    if path:
        return load_readers(path), path
    return Readers.open_default(), ""


class ReadersGate(ApplicationSession):
    """Owns the readers, the quota state of the router, and the sid → target cache."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        # This component runs in the router worker: its debug arguments stop costing CPU at warn.
        log.debug("router.lazy_log_args", rebound=install({**AUTOBAHN, **CROSSBAR}))
        env = os.environ
        self.readers, self.readers_path = _readers_from_env(env)
        #: estrom's own indices (the beaters' ESTROM_QUERY_INDEX_PREFIX): no reader's target names them
        self.own_prefix = env.get("ESTROM_QUERY_INDEX_PREFIX", "").strip() or OWN_PREFIX
        self.limits = QuotaLimits.from_env(env)
        self.refusals = Refusals()
        self.registrations = RegistrationRate(self.limits, self._now, self.refusals)
        self.describes = DescribeRate(self.limits, self._now, self.refusals)
        self.subscriptions = ConcurrentCounter(
            self.limits.subscriptions,
            self.limits.subscriptions_total,
            "ESTROM_QUOTA_SUBSCRIPTIONS",
            "ESTROM_QUOTA_SUBSCRIPTIONS_TOTAL",
            self.refusals,
        )
        #: session id -> (identity name, quota key)
        self.sessions: dict[int, tuple[str, str]] = {}
        #: session id -> {topic uri: quota key} of its subscriptions we counted
        self.held: dict[int, dict[str, str]] = {}
        #: subscription id -> topic uri (from wamp.subscription.on_create)
        self.topics: dict[int, str] = {}
        self.targets: OrderedDict[str, str] = OrderedDict()
        self._stamp = self._file_stamp()
        self._poll: LoopingCall | None = None
        #: seconds between second looks at live subscriptions (``recheck``); 0: never
        self.recheck_every = float(env.get("ESTROM_ROUTER_ACCESS_RECHECK", "").strip() or RECHECK_EVERY)
        self._recheck: LoopingCall | None = None
        self._rechecking = False
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
        await self.subscribe(self._on_create, "wamp.subscription.on_create")
        await self.subscribe(self._on_unsubscribe, "wamp.subscription.on_unsubscribe")
        await self.subscribe(self._on_delete, "wamp.subscription.on_delete")
        await self.subscribe(self._on_leave, "wamp.session.on_leave")
        if self.readers_path:
            self._poll = LoopingCall(self._maybe_reload)
            self._poll.start(1.0, now=False)
        if self.recheck_every > 0:
            self._recheck = LoopingCall(self._recheck_tick)
            self._recheck.start(self.recheck_every, now=False)
        log.info(
            "readers.ready readers={n} anonymous={anon}",
            n=len(self.readers.readers),
            anon=self.readers.anonymous is not None,
        )

    def onLeave(self, details: Any) -> None:
        # The router leaves and detaches its embedded sessions itself when it stops.
        for loop in (self._poll, self._recheck):
            if loop is not None and loop.running:
                loop.stop()

    def _file_stamp(self) -> tuple[float, int] | None:
        if not self.readers_path:
            return None
        try:
            st = os.stat(self.readers_path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _maybe_reload(self) -> None:
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self.readers = load_readers(self.readers_path)
        except ReadersError as exc:
            log.warn("readers.reload_failed reason={reason}", reason=str(exc))
            return
        log.info("readers.reloaded readers={n}", n=len(self.readers.readers))

    # --- live subscriptions judged again ---------------------------------------------

    def _recheck_tick(self) -> None:
        if self._rechecking:  # a slow beater: the next look waits for this one
            return
        self._rechecking = True
        d = ensureDeferred(self.recheck())
        d.addErrback(lambda f: log.warn("readers.recheck_failed error={e}", e=f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_rechecking", False))

    async def recheck(self) -> int:
        """Judge every held subscription again; remove (and tell) those refused now.

        A reader's subscription was admitted by its target's name and what
        its aliases reached then. Aliases change, and so does the access
        file: a subscription that would be refused now is removed with
        ``wamp.subscription.remove_subscriber``, whose UNSUBSCRIBED message
        carries the reason ``com.estrom.error.not_authorized``.
        """
        by_target: dict[str, list[tuple[int, str, str]]] = {}
        for session_id, held in list(self.held.items()):
            name = self.sessions.get(session_id, ("", ""))[0]
            for uri in held:
                target = self.targets.get(uri.removeprefix(TOPIC_PREFIX))
                if target is not None:
                    by_target.setdefault(target, []).append((session_id, uri, name))
        subscription_of = {uri: sub_id for sub_id, uri in self.topics.items()}
        removed = 0
        for target, holders in by_target.items():
            try:
                behind = await self.call(TARGET_REACH, target)
            except ApplicationError as exc:  # no beater, or no engine: judged again next time
                log.debug("readers.reach_unknown target={t} error={e}", t=target, e=exc.error)
                continue
            for session_id, uri, name in holders:
                identity = self.readers.identity(name)
                allowed = identity is not None and may_read(identity, target, self.own_prefix)
                if allowed and behind:
                    allowed = may_read(identity, ",".join(behind), self.own_prefix)  # type: ignore[arg-type]
                sub_id = subscription_of.get(uri)
                if allowed or sub_id is None:
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

    # --- who is this ----------------------------------------------------------------

    def _identity_of(self, session: Mapping[str, Any]) -> tuple[Identity | None, str]:
        """The identity of a session (by its role and authid) and its quota key."""
        role = session.get("authrole")
        if role == READER_ROLE:
            identity = self.readers.identity(str(session.get("authid")))
        elif role == BROWSER_ROLE:
            identity = self.readers.anonymous
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
        if identity is not None and isinstance(session.get("session"), int):
            self.sessions[session["session"]] = (identity.name, key)
        return identity, key

    # --- authentication ---------------------------------------------------------------

    def _authenticate(self, realm: str, authid: str | None, details: Mapping[str, Any]) -> dict[str, Any]:
        identity = self.readers.authenticate(str(details.get("ticket") or "") or "\0none")
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
        over_quota = decision.pop("quota", False)  # counted under its limit already
        if not decision["allow"] and not over_quota:
            self.refusals.count_reason(REFUSED)
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
        if sid not in self.targets:
            try:  # learning the target costs a lookup in the query store: the caller's quota
                self.describes.take(key)
            except QuotaExceeded as exc:  # counted by the bucket, under its limit
                log.debug("readers.quota key={key} limit={limit}", key=key, limit=exc.limit)
                return {**deny, "quota": True}
        target = await self._target_of(sid)
        if target is None or not may_read(identity, target, self.own_prefix):
            return deny
        sid_session = int(session["session"])
        held = self.held.setdefault(sid_session, {})
        if uri not in held:
            try:
                self.subscriptions.acquire(key)
            except QuotaExceeded as exc:  # counted by the counter, under its limit
                log.debug("readers.quota key={key} limit={limit}", key=key, limit=exc.limit)
                return {**deny, "quota": True}
            held[uri] = key
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
            self._check_admit(caller, action, index)

    def _check_admit(self, caller: Any, action: str, index: Any) -> None:
        known = self.sessions.get(caller) if isinstance(caller, int) else None
        if known is None:
            self.refusals.count_reason(REFUSED)
            raise ApplicationError(NOT_AUTHORIZED.uri, "the router does not know this caller")
        name, key = known
        if action == "lookup":  # before any target is known: only the caller's lookup quota
            try:
                self.describes.take(key)
            except QuotaExceeded as exc:
                raise ApplicationError(
                    QUOTA_EXCEEDED.uri,
                    str(exc),
                    limit=exc.limit,
                    value=exc.value,
                    retry_after=exc.retry_after,
                ) from None
            return
        identity = self.readers.identity(name) if name != ANONYMOUS else self.readers.anonymous
        if identity is None or not isinstance(index, str) or not may_read(identity, index, self.own_prefix):
            self.refusals.count_reason(REFUSED)
            raise ApplicationError(NOT_AUTHORIZED.uri, f"{name} may not read {index!r}")
        if action != "register":
            return
        try:
            per_key = self.limits.subscriptions
            if per_key and self.subscriptions.held[key] >= per_key:
                exc = QuotaExceeded("ESTROM_QUOTA_SUBSCRIPTIONS", per_key, key)
                self.refusals.count(exc)
                raise exc
            self.registrations.take(key)
        except QuotaExceeded as exc:
            raise ApplicationError(
                QUOTA_EXCEEDED.uri, str(exc), limit=exc.limit, value=exc.value, retry_after=exc.retry_after
            ) from None

    # --- subscription bookkeeping (meta events) ---------------------------------------

    def _on_create(self, session_id: int, details: Mapping[str, Any]) -> None:
        if isinstance(details, Mapping) and "id" in details:
            self.topics[int(details["id"])] = str(details.get("uri", ""))

    def _on_unsubscribe(self, session_id: int, subscription_id: int) -> None:
        uri = self.topics.get(subscription_id)
        held = self.held.get(session_id)
        if uri is None or not held or uri not in held:
            return
        self.subscriptions.release(held.pop(uri))

    def _on_delete(self, session_id: int, subscription_id: int) -> None:
        self.topics.pop(subscription_id, None)

    def _on_leave(self, session_id: int, *_args: Any) -> None:
        self.sessions.pop(session_id, None)
        for key in (self.held.pop(session_id, None) or {}).values():
            self.subscriptions.release(key)
