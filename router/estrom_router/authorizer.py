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

from collections.abc import Mapping
from typing import Any

from common.contract import DESCRIBE_QUERY, REGISTER_QUERY, sid_of_topic

BROWSER_PROCEDURES = frozenset({REGISTER_QUERY, DESCRIBE_QUERY})


def browser_may(uri: str, action: str, options: Mapping[str, Any] | None) -> bool:
    """Whether an anonymous browser may do ``action`` on ``uri`` (with crossbar's ``options``)."""
    if action == "call":
        return uri in BROWSER_PROCEDURES
    if action == "subscribe":
        match = (options or {}).get("match", "exact")
        return match == "exact" and sid_of_topic(uri) is not None
    return False
