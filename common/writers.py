"""Writers: who may write which indices, through ingest and the bulk API.

The access file (``ESTROM_ACCESS``, or the readers file ``ESTROM_READERS``
names: one file for both) may hold, beside its readers::

    {"writers": [{"name": "shipper", "token": "sha256:<hex>", "targets": ["logs-*"]}],
     "anonymous_writer": {"targets": ["scratch-*"]}}

A writer presents its token as ``Authorization: Bearer <token>``, or, for
shippers that only speak the engine's credentials, as ``Basic`` with its
name and token (Logstash's ``user``/``password``) or ``ApiKey`` of
``<name>:<token>`` (libbeat's ``api_key``). ``ESTROM_INGEST_TOKEN`` is a
writer too, named ``ingest-token``, of every index.

Targets use the read-target syntax and the same conservative containment as
readers (``common/readers.py``): a name (or a template's pattern) is
writable only when it is provably inside the writer's targets. Names
starting with ``.`` and estrom's own indices (``ESTROM_QUERY_INDEX_PREFIX``)
are nobody's, whatever the file says. Standard library only, as readers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.query.target_syntax import InvalidTarget
from common.readers import (
    OPEN_TARGETS,
    ReadersError,
    Scope,
    access_file,
    configured_targets,
    exposed_without_opt_in,
    pattern_matches,
    patterns_disjoint,
    scope_of,
    target_within,
    token_digest,
)

#: The name of the writer that ``ESTROM_INGEST_TOKEN`` is.
INGEST_TOKEN_WRITER = "ingest-token"
ANONYMOUS_WRITER = "anonymous"
#: A presented credential that can never match (malformed header): refused, not anonymous.
_MALFORMED = "\0malformed"
#: ``<static{date math}static>``: an index name with date math, as the engine resolves it.
_DATE_MATH = re.compile(r"\{[^{}]*(\{[^{}]*\}[^{}]*)?\}")


@dataclass(frozen=True)
class WriterIdentity:
    """Who writes: a writer's name (or ``anonymous``) and the targets it may write."""

    name: str
    targets: tuple[Scope, ...]


@dataclass(frozen=True)
class _Writer:
    name: str
    digest: bytes
    targets: tuple[Scope, ...]


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
            return Credential(_MALFORMED)
        name, sep, token = decoded.partition(":")
        if sep and name and token:
            return Credential(token, name)
    return Credential(_MALFORMED)


@dataclass(frozen=True)
class Writers:
    """The writers of the access file, the ingest token's writer, and the anonymous writer (if any)."""

    writers: tuple[_Writer, ...] = ()
    anonymous: WriterIdentity | None = None
    source: str = ""

    @property
    def configured(self) -> bool:
        """Whether anybody at all may write."""
        return bool(self.writers) or self.anonymous is not None

    def authenticate(self, credential: Credential | None) -> WriterIdentity | None:
        """The identity presenting ``credential`` (None: anonymous); None when refused (401).

        Every digest is compared in constant time, so the time says nothing of
        which writer matched. A name given with the token (Basic, ApiKey) must
        be that writer's.
        """
        if credential is None:
            return self.anonymous
        digest = hashlib.sha256(credential.token.encode("utf-8")).digest()
        found: _Writer | None = None
        for writer in self.writers:
            if hmac.compare_digest(digest, writer.digest):
                found = writer
        if found is None or (credential.name is not None and credential.name != found.name):
            return None
        return WriterIdentity(found.name, found.targets)


def parse_writers(document: Any, source: str = "", ingest_token: str = "") -> Writers:
    """The writers of an access file's JSON (already decoded); ReadersError says what is wrong."""
    where = source or "access file"
    document = document if document is not None else {}
    if not isinstance(document, dict):
        raise ReadersError(f"{where}: must be a JSON object")
    entries = document.get("writers", [])
    if not isinstance(entries, list):
        raise ReadersError(f"{where}: 'writers' must be a list")
    writers: list[_Writer] = []
    names: set[str] = set()
    digests: set[bytes] = set()
    if ingest_token:
        names.add(INGEST_TOKEN_WRITER)
        digest = hashlib.sha256(ingest_token.encode("utf-8")).digest()
        digests.add(digest)
        writers.append(_Writer(INGEST_TOKEN_WRITER, digest, OPEN_TARGETS))
    for i, entry in enumerate(entries):
        at = f"{where}: writers[{i}]"
        if not isinstance(entry, dict):
            raise ReadersError(f"{at}: must be an object with name, token, targets")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name == ANONYMOUS_WRITER or ":" in name:
            raise ReadersError(
                f"{at}: 'name' must be a non-empty string without ':', not {ANONYMOUS_WRITER!r}"
            )
        if name in names:
            raise ReadersError(f"{at}: name {name!r} appears twice (or is the ingest token's writer)")
        digest = token_digest(entry.get("token"), f"{at} ({name})")
        if digest in digests:
            raise ReadersError(f"{at} ({name}): the same token as another writer")
        targets, _raw = configured_targets(entry.get("targets"), f"{at} ({name})")
        if not targets:
            raise ReadersError(f"{at} ({name}): 'targets' is empty: a writer of nothing")
        names.add(name)
        digests.add(digest)
        writers.append(_Writer(name, digest, targets))
    anonymous: WriterIdentity | None = None
    if "anonymous_writer" in document:
        anon = document["anonymous_writer"]
        if not isinstance(anon, dict):
            raise ReadersError(f"{where}: 'anonymous_writer' must be an object with 'targets'")
        targets, _raw = configured_targets(anon.get("targets"), f"{where}: anonymous_writer")
        anonymous = WriterIdentity(ANONYMOUS_WRITER, targets)
    return Writers(tuple(writers), anonymous, source)


def writers_for(env: Mapping[str, str], interfaces: Iterable[str], ingest_token: str = "") -> Writers:
    """The writers a beater starts with, failing closed (ReadersError says why it refuses).

    The access file's writers and anonymous writer, plus the ingest token's
    writer. When that names nobody, anonymous may write every index (but
    estrom's own and dot-indices), and only if every interface is loopback
    or ``ESTROM_ANONYMOUS_WRITES=all`` says an open write side is intended.
    """
    path = access_file(env)
    document: Any = None
    if path:
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ReadersError(f"{path}: cannot read it: {exc.strerror or exc}") from None
        except ValueError as exc:
            raise ReadersError(f"{path}: not JSON: {exc}") from None
    writers = parse_writers(document, path, ingest_token)
    if writers.configured:
        return writers
    exposed = exposed_without_opt_in(env, "ESTROM_ANONYMOUS_WRITES", interfaces)
    if exposed:
        raise ReadersError(
            f"the beater listens on {', '.join(exposed)} (not loopback) and names no writer: anyone who "
            "reaches it could write every index. Add writers to the access file (ESTROM_ACCESS; "
            "`estrom writers add`), set ESTROM_INGEST_TOKEN, or ESTROM_ANONYMOUS_WRITES=all if an "
            "open write side is intended"
        )
    return Writers((), WriterIdentity(ANONYMOUS_WRITER, OPEN_TARGETS), "")


# --- what a name may be written -------------------------------------------------------------


def date_math_pattern(name: str) -> str:
    """``<logs-{now/d}-000001>`` as the pattern of the names it can resolve to (``logs-*-000001``)."""
    if name.startswith("<") and name.endswith(">"):
        return _DATE_MATH.sub("*", name[1:-1])
    return name


def is_own(pattern: str, own_prefix: str) -> bool:
    """Whether ``pattern`` (a name or a wildcard pattern) may name one of estrom's own indices."""
    if not own_prefix:
        return False
    return not patterns_disjoint(pattern, own_prefix + "*") or pattern_matches(pattern, own_prefix)


def write_refusal(identity: WriterIdentity, name: str, own_prefix: str) -> str | None:
    """Why ``identity`` may not write (or template, or alias) ``name``; None when it may.

    ``name`` may be a concrete name, a date-math name, or a wildcard pattern
    (a template's ``index_patterns``): everything it could name must be
    inside the writer's targets, and none of it estrom's own or hidden.
    """
    pattern = date_math_pattern(name)
    if pattern.startswith("."):
        return f"[{name}] is a hidden or system name: nobody writes it through estrom"
    if is_own(pattern, own_prefix):
        return f"[{name}] may name estrom's own indices ({own_prefix}*): nobody writes them"
    try:
        scope = scope_of(pattern)
    except InvalidTarget as exc:
        return f"[{name}] is not an index name: {exc}"
    if len(scope.include) != 1 or scope.exclude:
        return f"[{name}] is not one index name or pattern"
    if not target_within(scope, identity.targets):
        return f"[{name}] is outside the targets of writer [{identity.name}]"
    return None
