"""The beater's half of reader authorization: ask the router before a reader's call acts.

crossbar's dynamic authorizer never sees a call's arguments, so it cannot
tell which read target ``register_query`` or ``describe_query`` is about.
It allows the call with the caller disclosed; the beater then asks the
router's readers gate (router/estrom_router/readers_gate.py) with
``estrom.router.admit(caller, action, index)``, which answers nothing or
raises ``com.estrom.error.not_authorized`` / ``quota_exceeded``.

Principals (the tailor checks its own HTTP callers; the admin; the router's
own gate) are not asked. A caller the router did not disclose is refused:
fail closed, never open.

A target is judged by what it reaches, not only by its name: an alias (or
a pattern matching alias names) may lead to indices outside the reader's
targets. After the router admits the target by name, the concrete indices
behind every alias it covers (``GET /_alias/<target>``) are asked about too,
as one list target: a reader of ``public-*`` cannot register on an alias
``public-leak`` of ``payroll-2026``.
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession

from common.access.scopes import OWN_PREFIX
from common.aliases import alias_members
from common.contract import NOT_AUTHORIZED, ROUTER_ADMIT, error_for_uri
from common.engine import Engine, EngineRejected, EngineUnavailable
from common.errors import RetryLater
from common.wamp import RouterUnavailable

#: roles whose calls need no reader check
PRINCIPAL_ROLES = frozenset({"tailor", "admin", "authorizer", "beater", "trusted"})


async def check_caller(
    session: ISession | None,
    details: Any,
    action: str,
    index: str,
    engine: Engine | None = None,
    own_prefix: str = OWN_PREFIX,
) -> None:
    """Refuse (ApplicationError) a reader's ``action`` on ``index`` the router does not admit.

    With ``engine``, the indices behind the aliases ``index`` covers must be admitted too.
    Raises RetryLater when the router or the engine cannot tell.
    """
    role = getattr(details, "caller_authrole", None)
    if role in PRINCIPAL_ROLES:
        return
    caller = getattr(details, "caller", None)
    if caller is None:
        raise ApplicationError(NOT_AUTHORIZED.uri, "the router did not disclose the caller; refused")
    if session is None:
        raise RouterUnavailable("no router session to check the caller with")
    try:
        await session.call(ROUTER_ADMIT, caller, action, index)
        if engine is not None:
            try:
                behind = await alias_members(engine, index, own_prefix)
            except (EngineUnavailable, EngineRejected) as exc:
                raise RetryLater(f"could not resolve the target's aliases: {exc}") from None
            if behind:
                await session.call(ROUTER_ADMIT, caller, action, ",".join(behind))
    except ApplicationError as exc:
        if error_for_uri(exc.error) is not None:  # the router's refusal, estrom's own URI
            raise
        raise RetryLater(f"the router could not check the caller: {exc.error}") from None
