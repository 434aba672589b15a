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
"""

from __future__ import annotations

from typing import Any

from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.interfaces import ISession

from common import names
from common.quotas import NOT_AUTHORIZED

ADMIT = "estrom.router.admit"
#: roles whose calls need no reader check
PRINCIPAL_ROLES = frozenset({"tailor", "admin", "authorizer", "beater", "trusted"})


async def check_caller(session: ISession | None, details: Any, action: str, index: str) -> None:
    """Refuse (ApplicationError) a reader's ``action`` on ``index`` the router does not admit."""
    role = getattr(details, "caller_authrole", None)
    if role in PRINCIPAL_ROLES:
        return
    caller = getattr(details, "caller", None)
    if caller is None:
        raise ApplicationError(NOT_AUTHORIZED, "the router did not disclose the caller; refused")
    if session is None:
        raise ApplicationError(names.UNAVAILABLE, "no router session to check the caller with")
    try:
        await session.call(ADMIT, caller, action, index)
    except ApplicationError as exc:
        if exc.error.startswith("com.estrom.error."):
            raise
        raise ApplicationError(
            names.UNAVAILABLE, f"the router could not check the caller: {exc.error}"
        ) from None
