"""Transitional: the names the tailor still imports from here, now in common/contract.py.

Only tailor/queries/resolve.py and tailor/subscriptions/hub.py import this
module; delete it once they import common.contract instead. Nothing else may.
"""

from __future__ import annotations

from common import contract
from common.contract import DESCRIBE_QUERY, REGISTER_QUERY, topic_for

__all__ = [
    "DESCRIBE_QUERY",
    "INVALID_INDEX",
    "INVALID_QUERY",
    "NO_SUCH_QUERY",
    "REGISTER_QUERY",
    "UNAVAILABLE",
    "topic_for",
]

# Here these were the WAMP error URIs; the contract's are errors with both faces (``.uri``).
INVALID_QUERY = contract.INVALID_QUERY.uri
INVALID_INDEX = contract.INVALID_INDEX.uri
NO_SUCH_QUERY = contract.NO_SUCH_QUERY.uri
UNAVAILABLE = contract.UNAVAILABLE.uri
