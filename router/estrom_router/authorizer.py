"""The ``browser`` role's dynamic authorizer, embedded in the router.

crossbar's static permissions check a subscription's URI but not its match
policy: a role allowed ``docs-for-`` by prefix could subscribe *by prefix* to
``docs-for-`` and receive every query's hits. Anonymous browsers are therefore
authorized here, per action, by :func:`browser_may`: they may call
``register_query`` and ``describe_query``, and subscribe to one
``docs-for-<sid>`` with exact matching; nothing else.

The decision is cached by crossbar only where it cannot depend on the options:
crossbar's cache key is (realm, role, uri, action), without the match policy,
so a subscribe decision is never cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from autobahn.twisted.wamp import ApplicationSession

#: The procedure the ``browser`` role's ``"authorizer"`` names in router/config.json.
#: Outside ``com.estrom.`` on purpose: no service role may call or register it.
AUTHORIZER_URI = "estrom.router.authorize_browser"
BROWSER_PROCEDURES = frozenset({"com.estrom.register_query", "com.estrom.describe_query"})
#: ``docs-for-`` and a sid: 16 lowercase hex digits (farmhash64, common/query/identity.py).
HITS_TOPIC = re.compile(r"docs-for-[0-9a-f]{16}")


def browser_may(uri: str, action: str, options: Mapping[str, Any] | None) -> bool:
    """Whether an anonymous browser may do ``action`` on ``uri`` (with crossbar's ``options``)."""
    if action == "call":
        return uri in BROWSER_PROCEDURES
    if action == "subscribe":
        match = (options or {}).get("match", "exact")
        return match == "exact" and HITS_TOPIC.fullmatch(uri) is not None
    return False


def authorization(uri: str, action: str, options: Mapping[str, Any] | None) -> dict[str, bool]:
    """crossbar's answer: the decision, cached unless it depends on the match policy."""
    return {"allow": browser_may(uri, action, options), "cache": action != "subscribe", "disclose": False}


class BrowserAuthorizer(ApplicationSession):
    """Registers :data:`AUTHORIZER_URI`; a router component (router/config.json ``components``)."""

    def onJoin(self, details: Any) -> Any:
        # crossbar starts the transports once this Deferred fires: no browser
        # can join before the authorizer is there.
        return self.register(self._authorize, AUTHORIZER_URI)

    def onLeave(self, details: Any) -> None:
        # The router leaves and detaches its embedded sessions itself when it
        # stops; autobahn's default (disconnect, detaching again) only makes
        # crossbar log a warning.
        pass

    @staticmethod
    def _authorize(
        session: Mapping[str, Any], uri: str, action: str, options: Mapping[str, Any] | None = None
    ) -> dict[str, bool]:
        return authorization(uri, action, options)
