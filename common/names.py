"""WAMP error URIs of the public contract (../shared/contract.md)."""

from __future__ import annotations

INVALID_QUERY = "com.estrom.error.invalid_query"
INVALID_INDEX = "com.estrom.error.invalid_index"
UNAVAILABLE = "com.estrom.error.unavailable"
NO_SUCH_QUERY = "com.estrom.error.no_such_query"

REGISTER_QUERY = "com.estrom.register_query"
DESCRIBE_QUERY = "com.estrom.describe_query"

TOPIC_PREFIX = "docs-for-"


def topic_for(sid: str) -> str:
    """The WAMP topic on which the hits of one subscription are published."""
    return TOPIC_PREFIX + sid
