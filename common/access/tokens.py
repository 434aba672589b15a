"""Credentials as requests present them, and how a token is found among the configured digests.

Readers present a bearer token (``Authorization: Bearer``, ``?token=`` for
EventSource, a WAMP ticket); writers also the engine's own credential
shapes (``Basic`` name and token, ``ApiKey``). A header that is present but
not understood is a credential that matches nobody (refused), never "no
credentials" (anonymous).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from common.access.scopes import Scope

HASH_PREFIX = "sha256:"
#: A presented credential that can never match (a malformed header): refused, not anonymous.
MALFORMED = "\0malformed"


@dataclass(frozen=True)
class Principal:
    """A named reader or writer of the access file: its token's SHA-256 digest and its allowed targets."""

    name: str
    digest: bytes
    targets: tuple[Scope, ...]
    raw_targets: tuple[str, ...] = ()


def holder_of(token: str, holders: Iterable[Principal]) -> Principal | None:
    """The principal whose digest is ``token``'s SHA-256, or None.

    Every digest is compared, in constant time, so the time taken says
    nothing about which holder (or how much of a digest) matched.
    """
    digest = hashlib.sha256(token.encode("utf-8")).digest()
    found: Principal | None = None
    for holder in holders:
        if hmac.compare_digest(digest, holder.digest):
            found = holder
    return found


def token_hash(token: str) -> str:
    """``sha256:<hex>`` of a token: what the readers file may hold instead of the token."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (printed once by ``estrom readers add``)."""
    return secrets.token_urlsafe(32)


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token of an HTTP request: ``Authorization: Bearer <t>``, else ``?token=``; None if neither.

    A malformed Authorization header counts as a bad token ("" is never a
    valid one), not as anonymous.
    """
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return MALFORMED
        return value.strip()
    if query_token:
        return query_token
    return None


@dataclass(frozen=True)
class Credential:
    """What a request presented: a token, and the name it was presented with (Basic, ApiKey)."""

    token: str
    name: str | None = None


def presented(authorization: bytes | None) -> Credential | None:
    """The credential of an ``Authorization`` header; None when there is none.

    A header that is present but not understood is a credential that matches
    no writer (refused), never "no credentials" (anonymous).
    """
    if authorization is None or not authorization.strip():
        return None
    scheme, _, value = authorization.strip().partition(b" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == b"bearer" and value:
        return Credential(value.decode("latin-1"))
    if scheme in (b"basic", b"apikey") and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return Credential(MALFORMED)
        name, sep, token = decoded.partition(":")
        if sep and name and token:
            return Credential(token, name)
    return Credential(MALFORMED)
