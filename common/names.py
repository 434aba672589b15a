"""The public names of the contract (../shared/contract.md): procedures, topics, error codes.

One module, so that a newcomer looking for "what is this called on the wire"
finds it by its name, and nothing imports topic naming "from errors".
"""

from __future__ import annotations

# --- WAMP procedures ---------------------------------------------------------------
REGISTER_QUERY = "com.estrom.register_query"
DESCRIBE_QUERY = "com.estrom.describe_query"
#: internal (the router's gate and tailors, not browsers): the indices behind a target's aliases
TARGET_REACH = "com.estrom.target_reach"

# --- WAMP error URIs ---------------------------------------------------------------
INVALID_QUERY = "com.estrom.error.invalid_query"
INVALID_INDEX = "com.estrom.error.invalid_index"
UNAVAILABLE = "com.estrom.error.unavailable"
NO_SUCH_QUERY = "com.estrom.error.no_such_query"

# --- HTTP error codes (the ``error`` of a JSON error body) ------------------------
HTTP_INVALID_QUERY = "invalid_query"
HTTP_INVALID_INDEX = "invalid_index"
HTTP_NO_SUCH_QUERY = "no_such_query"
HTTP_UNAVAILABLE = "unavailable"
HTTP_NOT_FOUND = "not_found"

# --- WAMP topics -------------------------------------------------------------------
TOPIC_PREFIX = "docs-for-"


def topic_for(sid: str) -> str:
    """The WAMP topic on which the hits of one subscription are published."""
    return TOPIC_PREFIX + sid
