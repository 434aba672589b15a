"""The shape of what a reader's session may do: the first check of the readers gate.

crossbar's static permissions check a subscription's URI but not its match
policy: a role allowed ``docs-for-`` by prefix could subscribe *by prefix* to
``docs-for-`` and receive every query's hits. Anonymous browsers are therefore
authorized here, per action, by :func:`browser_may`: they may call
``register_query`` and ``describe_query``, and subscribe to one
``docs-for-<sid>`` with exact matching; nothing else.

The readers gate (readers_gate.py) then checks the identity, the read target
and the quotas; it never lets crossbar cache a decision, since crossbar's
cache key (realm, role, uri, action) has neither the match policy nor the
session.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

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
