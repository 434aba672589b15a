"""Readers: who may read which read targets (tails, counts, subscriptions, ``describe_query``).

The identities of the access file's readers and its anonymous reader, how a
token is checked against them, and whether an identity may use a read
target. The tailor (HTTP), the router (WAMP) and the beater (on the router's
word) all decide through :func:`may_read`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from common.access.scopes import (
    OPEN_TARGETS,
    OWN_PREFIX,
    Scope,
    names_own,
    patterns_disjoint,
    scope_of,
    target_within,
)
from common.access.tokens import Principal, holder_of
from common.query.target_syntax import InvalidTarget

#: The identity of callers without a token (browsers, scripts) when an anonymous reader exists.
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Identity:
    """Who a request is: a reader's name, or the anonymous reader (``name == ANONYMOUS``)."""

    name: str
    targets: tuple[Scope, ...]

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


@dataclass(frozen=True)
class Readers:
    """The parsed readers file (or the open default); look identities up by token."""

    readers: tuple[Principal, ...] = ()
    anonymous: Identity | None = None
    #: where it came from, for messages ("" for the open default)
    source: str = ""
    _by_name: Mapping[str, Principal] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open_default(cls) -> Readers:
        """No file: an anonymous reader of every target but dot-indices (loopback only)."""
        return cls((), Identity(ANONYMOUS, OPEN_TARGETS), "")

    def authenticate(self, token: str | None) -> Identity | None:
        """The identity of ``token`` (None or "" for anonymous); None when refused (401).

        Tokens are compared in constant time (:func:`holder_of`).
        """
        if not token:
            return self.anonymous
        found = holder_of(token, self.readers)
        return Identity(found.name, found.targets) if found is not None else None

    def identity(self, name: str) -> Identity | None:
        """The identity named ``name`` (the router's authid), or None."""
        if name == ANONYMOUS:
            return self.anonymous
        reader = self._by_name.get(name)
        return Identity(reader.name, reader.targets) if reader else None


def may_read(identity: Identity, raw_target: str, own_prefix: str = OWN_PREFIX) -> bool:
    """Whether ``identity`` may use the read target ``raw_target`` (conservatively).

    A target the store's parser refuses is refused here too (the services
    answer ``invalid_index`` for it before they ask); so is one naming
    estrom's own indices. A wider pattern (``*``) is read without them
    (:func:`searchable`).
    """
    try:
        scope = scope_of(raw_target)
    except InvalidTarget:
        return False
    if any(names_own(p, own_prefix) for p in scope.include):
        return False
    return target_within(scope, identity.targets)


def searchable(raw_target: str, own_prefix: str = OWN_PREFIX) -> str:
    """``raw_target`` as the engine is searched for it: without estrom's own indices.

    A target whose patterns could cover them (``*``, ``e*``) gets the
    exclusion ``-<prefix>*`` last, so a backfill never returns stored queries.
    """
    try:
        scope = scope_of(raw_target)
    except InvalidTarget:
        return raw_target
    if own_prefix and any(not patterns_disjoint(p, own_prefix + "*") for p in scope.include):
        return f"{raw_target},-{own_prefix}*"
    return raw_target
