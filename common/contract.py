"""The wire contract (../shared/contract.md) by name: procedures, topics, sids, errors.

One module for everything a client sees on the wire, used by the router,
the services and the CLI alike: a newcomer looking for "what is this called"
finds it here, and a name changes in one place, with the contract.

Standard library only: the router worker imports it from its own virtualenv
(router/config.json's ``pythonpath``; the Dockerfile's router stage copies it).
"""

from __future__ import annotations

import re
from typing import NamedTuple

# --- WAMP procedures (realm ``estrom``) -----------------------------------------------
REGISTER_QUERY = "com.estrom.register_query"
DESCRIBE_QUERY = "com.estrom.describe_query"
#: internal (the router's gate and tailors, not browsers): the indices behind a target's aliases
TARGET_REACH = "com.estrom.target_reach"

# The router's own procedures (router/estrom_router/readers_gate.py). Outside ``com.estrom.``
# on purpose: no service role, allowed ``com.estrom.`` by prefix, may call or register them.
#: crossbar's dynamic WAMP-ticket authenticator (a reader's token)
ROUTER_AUTHENTICATE = "estrom.router.authenticate"
#: the dynamic authorizer of the ``browser`` and ``reader`` roles (router/config.json names it)
ROUTER_AUTHORIZE = "estrom.router.authorize_browser"
#: the beater's question before a reader's call acts: ``admit(caller, action, index)``
ROUTER_ADMIT = "estrom.router.admit"

# --- topics and sids ------------------------------------------------------------------
TOPIC_PREFIX = "docs-for-"
#: A sid: 16 lowercase hex digits (farmhash64, common/query/identity.py). A regular
#: expression's text, to build larger ones with; ``is_sid`` checks one.
SID_PATTERN = "[0-9a-f]{16}"
_SID = re.compile(SID_PATTERN)


def is_sid(text: object) -> bool:
    """Whether ``text`` is a sid, exactly (nothing around it, not even a newline)."""
    return isinstance(text, str) and _SID.fullmatch(text) is not None


def topic_for(sid: str) -> str:
    """The WAMP topic on which the hits of one subscription are published."""
    return TOPIC_PREFIX + sid


def sid_of_topic(uri: str) -> str | None:
    """The sid of a ``docs-for-<sid>`` topic; None for any other URI."""
    sid = uri[len(TOPIC_PREFIX) :]
    return sid if uri.startswith(TOPIC_PREFIX) and is_sid(sid) else None


# --- errors ---------------------------------------------------------------------------
class WireError(NamedTuple):
    """One error as clients see it: HTTP status and the JSON body's ``error`` code, and the
    WAMP error URI where the same refusal has one (None: HTTP only)."""

    status: int
    code: str
    uri: str | None = None


# Both faces: the tailor answers over HTTP what the beater's RPCs raise over WAMP.
INVALID_QUERY = WireError(400, "invalid_query", "com.estrom.error.invalid_query")
INVALID_INDEX = WireError(400, "invalid_index", "com.estrom.error.invalid_index")
NO_SUCH_QUERY = WireError(404, "no_such_query", "com.estrom.error.no_such_query")
#: a reader may not use this target (HTTP 403)
NOT_AUTHORIZED = WireError(403, "not_authorized", "com.estrom.error.not_authorized")
#: a reader's token missing or wrong: HTTP 401; over WAMP the router refuses the ticket
NOT_AUTHENTICATED = WireError(401, "not_authorized", NOT_AUTHORIZED.uri)
#: over a reader's quota: HTTP with Retry-After; WAMP naming the limit and its value
QUOTA_EXCEEDED = WireError(429, "quota_exceeded", "com.estrom.error.quota_exceeded")
#: engine or router away, the service shutting down: retry later (HTTP with Retry-After)
UNAVAILABLE = WireError(503, "unavailable", "com.estrom.error.unavailable")

# HTTP only: the tailor's parameters.
INVALID_PARAMETER = WireError(400, "invalid_parameter")
MISSING_PARAMETER = WireError(400, "missing_parameter")

# HTTP only: the beater's writers (ingest and the bulk API).
WRITER_UNAUTHORIZED = WireError(401, "unauthorized")
WRITER_FORBIDDEN = WireError(403, "forbidden")
#: the ingest queue is full (with Retry-After)
QUEUE_FULL = WireError(429, "queue_full")
BODY_TOO_LARGE = WireError(413, "body_too_large")
TOO_MANY_DOCUMENTS = WireError(413, "too_many_documents")
UNREADABLE_BODY = WireError(400, "unreadable_body")
UNSUPPORTED_MEDIA_TYPE = WireError(415, "unsupported_media_type")
UNSUPPORTED_ENCODING = WireError(415, "unsupported_encoding")
# The bulk API and its pass-through refuse in the engine's words, which shippers know.
ENGINE_SECURITY_EXCEPTION = WireError(403, "security_exception")
ENGINE_ILLEGAL_ARGUMENT = WireError(400, "illegal_argument_exception")
#: the engine answered a question of estrom's own (not the shipper's) with an error
ENGINE_ERROR = WireError(502, "engine_error")

# HTTP only: both services.
NOT_FOUND = WireError(404, "not_found")
METHOD_NOT_ALLOWED = WireError(405, "method_not_allowed")
#: a request Twisted cannot parse
BAD_REQUEST = WireError(400, "bad_request")
REQUEST_TOO_LONG = WireError(414, "request_too_long")
INTERNAL = WireError(500, "internal")

# --- codes a stream ends or pauses with -----------------------------------------------
# A tail or count already answered 200 cannot answer an error status: it ends with its
# format's error ending (the JSON document's ``"error"`` member after ``"hits"``, NDJSON's
# last line, SSE's ``end`` event), ``{"error": code, "reason": text}``. The code is one of
# the errors above where one fits (``invalid_query``: the engine refused the backfill;
# ``not_authorized``: the target now reaches what its reader may not read; ``unavailable``:
# the backfill could not be read on), else one of these. NDJSON and SSE streams pause
# through a router loss instead, with a gap notice where the hits missed would be.
#: the router was lost and not back in time (or refused the subscription again)
ROUTER_UNAVAILABLE = "router_unavailable"
#: the tailor is shutting down: reconnect (another tailor, or this one restarted)
SHUTTING_DOWN = "shutting_down"
#: the client fell too far behind the stream (or stalled on a backfill page) and was dropped
SLOW_READER = "slow_reader"

#: Every error of the contract, in the order ``error_for_uri`` reads them.
ERRORS = (
    INVALID_QUERY,
    INVALID_INDEX,
    NO_SUCH_QUERY,
    NOT_AUTHORIZED,
    NOT_AUTHENTICATED,
    QUOTA_EXCEEDED,
    UNAVAILABLE,
    INVALID_PARAMETER,
    MISSING_PARAMETER,
    WRITER_UNAUTHORIZED,
    WRITER_FORBIDDEN,
    QUEUE_FULL,
    BODY_TOO_LARGE,
    TOO_MANY_DOCUMENTS,
    UNREADABLE_BODY,
    UNSUPPORTED_MEDIA_TYPE,
    UNSUPPORTED_ENCODING,
    ENGINE_SECURITY_EXCEPTION,
    ENGINE_ILLEGAL_ARGUMENT,
    ENGINE_ERROR,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
    BAD_REQUEST,
    REQUEST_TOO_LONG,
    INTERNAL,
)


def error_for_uri(uri: str) -> WireError | None:
    """The contract's error with this WAMP error URI (its HTTP face), None for any other URI.

    ``not_authorized`` is NOT_AUTHORIZED's 403: a session whose ticket was
    refused never gets to call anything.
    """
    return next((error for error in ERRORS if error.uri == uri), None)


# crossbar's own error URIs, which the services tell apart from estrom's.
#: a subscription the router refuses (a dynamic authorizer cannot choose the URI)
WAMP_NOT_AUTHORIZED = "wamp.error.not_authorized"
#: a procedure nobody registered: no beater is joined
WAMP_NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
#: ``wamp.subscription.get`` of a subscription gone meanwhile
WAMP_NO_SUCH_SUBSCRIPTION = "wamp.error.no_such_subscription"
