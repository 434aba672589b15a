"""Readers: who may read which read targets.

The one place that knows the readers file (``ESTROM_READERS``), how tokens
are checked, and whether an identity may use a read target. Standard library
only (with the store's parser of read targets, common/query/target_syntax.py,
standard library only too): the router's embedded authorizer
(router/estrom_router/) imports this module from its own virtualenv, which
has none of the services' packages.

A reader may use a target only if *everything the target could cover* lies
inside its allowed targets. Deciding that exactly for wildcard patterns,
lists and ``-`` exclusions is more than we need, so :func:`target_within`
answers conservatively: "yes" only when it can prove containment, "no" when
unsure. Names starting with ``.`` (hidden and system indices) are never
readable, whatever the file says.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.query.target_syntax import InvalidTarget, parse_target

#: estrom's own indices (the stored queries) start with this, unless ESTROM_QUERY_INDEX_PREFIX says
#: otherwise: nobody's to read or write, whatever the access file says.
OWN_PREFIX = "estrom-queries-"
#: The identity of callers without a token (browsers, scripts) when an anonymous reader exists.
ANONYMOUS = "anonymous"
HASH_PREFIX = "sha256:"
WILDCARDS = frozenset("*?")


class ReadersError(ValueError):
    """The readers file cannot be used; raised at start-up or reload, saying why."""


# --- read targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """What a read target includes and excludes, as containment needs it.

    Built from the store's parser (common/query/target_syntax.py), the one
    parser of read targets, by :func:`scope_of`; the open default is built
    directly (its ``.*`` exclusion is not a target anybody may write).
    """

    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    #: the exclusions no later inclusion can add back to (Elasticsearch resolves a list left to
    #: right: ``a*,-a1*,a1x*`` reads a1x*): the only ones a *request* may count on
    final_exclude: tuple[str, ...] = ()


def scope_of(text: str) -> Scope:
    """The :class:`Scope` of a read target; InvalidTarget (from the store's parser) says what is wrong."""
    target = parse_target(text)
    exclude = tuple(p for excluded, patterns in target.runs if excluded for p in patterns)
    last_excluded, last = target.runs[-1]
    return Scope(target.inclusions, exclude, last if last_excluded else ())


def _is_literal(pattern: str) -> bool:
    return not (set(pattern) & WILDCARDS)


def pattern_matches(pattern: str, name: str) -> bool:
    """Whether ``name`` (a concrete string) matches ``pattern`` (``*`` any run, ``?`` one char)."""
    # Iterative wildcard match with back-tracking to the last star: linear enough for names.
    p = n = 0
    star = -1
    mark = 0
    while n < len(name):
        if p < len(pattern) and (pattern[p] == "?" or pattern[p] == name[n]):
            p += 1
            n += 1
        elif p < len(pattern) and pattern[p] == "*":
            star = p
            mark = n
            p += 1
        elif star >= 0:
            p = star + 1
            mark += 1
            n = mark
        else:
            return False
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def pattern_contains(outer: str, inner: str) -> bool:
    """Whether every name ``inner`` could match is matched by ``outer`` (sound, not complete).

    Treats ``inner``'s wildcards as literal characters that ``outer`` must
    absorb with its own ``*``: a ``*`` or ``?`` of ``inner`` is matched only
    by a ``*`` of ``outer``. That proves containment for the shapes people
    write (``logs-*`` in ``*``, ``logs-app-*`` in ``logs-*``) and refuses
    when unsure.
    """
    if _is_literal(inner):
        return pattern_matches(outer, inner)

    # Dynamic programming over (outer position, inner position).
    @_memo
    def ok(i: int, j: int) -> bool:
        if i == len(outer):
            return j == len(inner)
        if outer[i] == "*":
            # ``*`` absorbs nothing, or one more character (literal or wildcard) of inner.
            return ok(i + 1, j) or (j < len(inner) and ok(i, j + 1))
        if j == len(inner):
            return False
        c = inner[j]
        if c == "*":
            return False  # an inner star covers runs only an outer star covers
        if c == "?":
            return False  # an outer ``?`` would do, but keep it simple: refuse
        return (outer[i] == "?" or outer[i] == c) and ok(i + 1, j + 1)

    return ok(0, 0)


def _memo(fn: Callable[[int, int], bool]) -> Callable[[int, int], bool]:
    cache: dict[tuple[int, int], bool] = {}

    def wrapped(i: int, j: int) -> bool:
        key = (i, j)
        if key not in cache:
            cache[key] = fn(i, j)
        return cache[key]

    return wrapped


def patterns_disjoint(a: str, b: str) -> bool:
    """Whether no name can match both ``a`` and ``b`` (sound: "True" only when certain).

    Certain when both are literal and differ, when one is literal and the
    other does not match it, or when their literal prefixes (before the first
    wildcard) or suffixes (after the last) disagree.
    """
    if _is_literal(a):
        return not pattern_matches(b, a)
    if _is_literal(b):
        return not pattern_matches(a, b)
    pa, pb = _literal_prefix(a), _literal_prefix(b)
    n = min(len(pa), len(pb))
    if pa[:n] != pb[:n]:
        return True
    sa, sb = _literal_suffix(a), _literal_suffix(b)
    n = min(len(sa), len(sb))
    return n > 0 and sa[-n:] != sb[-n:]


def _literal_prefix(pattern: str) -> str:
    for i, c in enumerate(pattern):
        if c in WILDCARDS:
            return pattern[:i]
    return pattern


def _literal_suffix(pattern: str) -> str:
    for i in range(len(pattern) - 1, -1, -1):
        if pattern[i] in WILDCARDS:
            return pattern[i + 1 :]
    return pattern


def may_cover_dot_index(pattern: str, target: Scope) -> bool:
    """Whether ``pattern`` could cover a name starting with ``.``, given the target's exclusions."""
    if not (pattern.startswith(".") or pattern[:1] in WILDCARDS):
        return False
    return not any(pattern_contains(x, ".*") for x in target.final_exclude)


def target_within(target: Scope, allowed: Sequence[Scope]) -> bool:
    """Whether everything ``target`` could cover lies inside the union of ``allowed``.

    Each included pattern must be proven inside one allowed entry: inside one
    of its patterns, and clear of each of its exclusions (disjoint from it, or
    excluded by the target itself). Dot-indices are never inside. An empty
    target is refused: it would mean "everything" to the engine.
    """
    if not target.include:
        return False
    for pattern in target.include:
        if may_cover_dot_index(pattern, target):
            return False
        if not any(_pattern_within(pattern, target, entry) for entry in allowed):
            return False
    return True


def _pattern_within(pattern: str, target: Scope, entry: Scope) -> bool:
    if not any(pattern_contains(outer, pattern) for outer in entry.include):
        return False
    for excluded in entry.exclude:
        if patterns_disjoint(pattern, excluded):
            continue
        if any(pattern_contains(own, excluded) for own in target.final_exclude):
            continue
        return False
    return True


# --- tokens ----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """``sha256:<hex>`` of a token: what the readers file may hold instead of the token."""
    return HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (printed once by ``estrom readers add``)."""
    return secrets.token_urlsafe(32)


# --- the readers file ------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """A named principal: its token's SHA-256 digest and its allowed targets."""

    name: str
    digest: bytes
    targets: tuple[Scope, ...]
    raw_targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Identity:
    """Who a request is: a reader's name, or the anonymous reader (``name == ANONYMOUS``)."""

    name: str
    targets: tuple[Scope, ...]

    @property
    def anonymous(self) -> bool:
        return self.name == ANONYMOUS


#: Without a readers file on loopback: anonymous may read everything but dot-indices.
OPEN_TARGETS = (Scope(("*",), (".*",), (".*",)),)


@dataclass(frozen=True)
class Readers:
    """The parsed readers file (or the open default); look identities up by token."""

    readers: tuple[Reader, ...] = ()
    anonymous: Identity | None = None
    #: where it came from, for messages ("" for the open default)
    source: str = ""
    _by_name: Mapping[str, Reader] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def open_default(cls) -> Readers:
        """No file: an anonymous reader of every target but dot-indices (loopback only)."""
        return cls((), Identity(ANONYMOUS, OPEN_TARGETS), "")

    def authenticate(self, token: str | None) -> Identity | None:
        """The identity of ``token`` (None or "" for anonymous); None when refused (401).

        Every reader's digest is compared, in constant time, so the time taken
        says nothing about which reader (or how much of a digest) matched.
        """
        if not token:
            return self.anonymous
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found: Reader | None = None
        for reader in self.readers:
            if hmac.compare_digest(digest, reader.digest):
                found = reader
        return Identity(found.name, found.targets) if found is not None else None

    def identity(self, name: str) -> Identity | None:
        """The identity named ``name`` (the router's authid), or None."""
        if name == ANONYMOUS:
            return self.anonymous
        reader = self._by_name.get(name)
        return Identity(reader.name, reader.targets) if reader else None


def names_own(pattern: str, own_prefix: str = OWN_PREFIX) -> bool:
    """Whether ``pattern`` names estrom's own indices by their prefix (``estrom-queries-*``, a name)."""
    return bool(own_prefix) and _literal_prefix(pattern).startswith(own_prefix)


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


def configured_targets(value: Any, where: str) -> tuple[tuple[Scope, ...], tuple[str, ...]]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ReadersError(f"{where}: 'targets' must be a list of non-empty strings")
    scopes = []
    for text in value:
        try:
            scopes.append(scope_of(text))
        except InvalidTarget as exc:
            raise ReadersError(f"{where}: target {text!r} is not a read target: {exc}") from None
    return tuple(scopes), tuple(value)


def token_digest(token: Any, where: str) -> bytes:
    if not isinstance(token, str) or not token:
        raise ReadersError(f"{where}: 'token' must be a non-empty string (the token, or sha256:<hex>)")
    if token.startswith(HASH_PREFIX):
        hexdigest = token[len(HASH_PREFIX) :]
        try:
            digest = bytes.fromhex(hexdigest)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ReadersError(f"{where}: 'token' sha256:<hex> needs 64 hex digits")
        return digest
    if len(token) < 16:
        raise ReadersError(f"{where}: 'token' is too short to be a secret (16 characters at least)")
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_readers(document: Any, source: str = "") -> Readers:
    """The readers file's JSON (already decoded) as :class:`Readers`; ReadersError says what is wrong."""
    where = source or "readers file"
    if not isinstance(document, dict):
        raise ReadersError(f"{where}: must be a JSON object with 'readers' and/or 'anonymous'")
    # The writers' keys are read by common/writers.py: one access file for both.
    unknown = set(document) - {"readers", "anonymous", "writers", "anonymous_writer"}
    if unknown:
        raise ReadersError(f"{where}: unknown keys {sorted(unknown)}")
    entries = document.get("readers", [])
    if not isinstance(entries, list):
        raise ReadersError(f"{where}: 'readers' must be a list")
    readers: list[Reader] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    for i, entry in enumerate(entries):
        at = f"{where}: readers[{i}]"
        if not isinstance(entry, dict):
            raise ReadersError(f"{at}: must be an object with name, token, targets")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name == ANONYMOUS:
            raise ReadersError(f"{at}: 'name' must be a non-empty string other than {ANONYMOUS!r}")
        if name in names:
            raise ReadersError(f"{at}: name {name!r} appears twice")
        digest = token_digest(entry.get("token"), f"{at} ({name})")
        if digest in digests:
            raise ReadersError(f"{at} ({name}): the same token as another reader")
        targets, raw = configured_targets(entry.get("targets"), f"{at} ({name})")
        names.add(name)
        digests.add(digest)
        readers.append(Reader(name, digest, targets, raw))
    anonymous: Identity | None = None
    if "anonymous" in document:
        anon = document["anonymous"]
        if not isinstance(anon, dict):
            raise ReadersError(f"{where}: 'anonymous' must be an object with 'targets'")
        targets, _ = configured_targets(anon.get("targets"), f"{where}: anonymous")
        anonymous = Identity(ANONYMOUS, targets)
    return Readers(tuple(readers), anonymous, source, {r.name: r for r in readers})


def load_readers(path: str | os.PathLike[str]) -> Readers:
    """Read and parse the readers file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadersError(f"ESTROM_READERS={p}: cannot read it: {exc.strerror or exc}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ReadersError(f"ESTROM_READERS={p}: not JSON: {exc}") from None
    return parse_readers(document, str(p))


# --- start-up policy -------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen interface) is reachable from this machine only."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_interface(endpoint: str) -> str:
    """The interface of a Twisted endpoint string (``tcp:8082:interface=127.0.0.1``); "" is every one."""
    parts = re.split(r"(?<!\\):", endpoint)
    for part in parts[1:]:
        if part.startswith("interface="):
            return part[len("interface=") :].replace("\\:", ":")
    return ""


def access_file(env: Mapping[str, str]) -> str:
    """The access file's path: ``ESTROM_ACCESS``, else ``ESTROM_READERS`` (one file, either name)."""
    return (env.get("ESTROM_ACCESS", "") or env.get("ESTROM_READERS", "")).strip()


def exposed_without_opt_in(env: Mapping[str, str], variable: str, interfaces: Iterable[str]) -> list[str]:
    """The interfaces beyond loopback, unless ``variable=all`` says an open side is intended ([] then)."""
    opt_in = env.get(variable, "").strip().lower()
    if opt_in not in ("", "all"):
        raise ReadersError(f"{variable} must be 'all' or unset, not {opt_in!r}")
    if opt_in == "all":
        return []
    return [i or "every interface" for i in interfaces if not is_loopback(i)]


def readers_for(env: Mapping[str, str], interfaces: Iterable[str], service: str) -> Readers:
    """The readers a service starts with, failing closed (ReadersError says why it refuses).

    ``ESTROM_READERS`` set: that file. Unset: the open default, but only if
    every interface is loopback or ``ESTROM_ANONYMOUS_READS=all`` says an
    open read side is intended.
    """
    path = access_file(env)
    if path:
        return load_readers(path)
    exposed = exposed_without_opt_in(env, "ESTROM_ANONYMOUS_READS", interfaces)
    if exposed:
        raise ReadersError(
            f"the {service} listens on {', '.join(exposed)} (not loopback) and ESTROM_READERS is unset: "
            "anyone who reaches it could read every index. Set ESTROM_READERS to a readers file, "
            "or ESTROM_ANONYMOUS_READS=all if an open read side is intended"
        )
    return Readers.open_default()


class ReadersHolder:
    """The current readers of a process, re-read on demand (SIGHUP) without a restart.

    A reload that fails keeps the readers in force and reports why: a typo in
    the file must not lock everybody out, nor let everybody in.
    """

    def __init__(self, readers: Readers, path: str = "") -> None:
        self.readers = readers
        self.path = path

    def reload(self) -> str | None:
        """Re-read the file; None on success, else the reason it was kept as it was."""
        if not self.path:
            return None
        try:
            self.readers = load_readers(self.path)
        except ReadersError as exc:
            return str(exc)
        return None


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    """The token of an HTTP request: ``Authorization: Bearer <t>``, else ``?token=``; None if neither.

    A malformed Authorization header counts as a bad token ("" is never a
    valid one), not as anonymous.
    """
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "\0malformed"
        return value.strip()
    if query_token:
        return query_token
    return None
