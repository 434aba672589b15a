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
readers (``common/access/scopes.py``): a name (or a template's pattern) is
writable only when it is provably inside the writer's targets. Names
starting with ``.`` and estrom's own indices (``ESTROM_QUERY_INDEX_PREFIX``)
are nobody's, whatever the file says. Standard library only, as readers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from common.access.access_file import access_file, anonymous_targets, entries_of, read_document
from common.access.errors import ReadersError
from common.access.exposure import exposed_without_opt_in
from common.access.scopes import (
    OPEN_TARGETS,
    Scope,
    pattern_matches,
    patterns_disjoint,
    scope_of,
    target_within,
)
from common.access.tokens import Credential, Principal, holder_of
from common.query.target_syntax import InvalidTarget

#: The name of the writer that ``ESTROM_INGEST_TOKEN`` is.
INGEST_TOKEN_WRITER = "ingest-token"
ANONYMOUS_WRITER = "anonymous"
#: ``<static{date math}static>``: an index name with date math, as the engine resolves it.
_DATE_MATH = re.compile(r"\{[^{}]*(\{[^{}]*\}[^{}]*)?\}")


@dataclass(frozen=True)
class WriterIdentity:
    """Who writes: a writer's name (or ``anonymous``) and the targets it may write."""

    name: str
    targets: tuple[Scope, ...]


@dataclass(frozen=True)
class Writers:
    """The writers of the access file, the ingest token's writer, and the anonymous writer (if any)."""

    writers: tuple[Principal, ...] = ()
    anonymous: WriterIdentity | None = None
    source: str = ""

    @property
    def configured(self) -> bool:
        """Whether anybody at all may write."""
        return bool(self.writers) or self.anonymous is not None

    def authenticate(self, credential: Credential | None) -> WriterIdentity | None:
        """The identity presenting ``credential`` (None: anonymous); None when refused (401).

        Tokens are compared in constant time (:func:`holder_of`). A name
        given with the token (Basic, ApiKey) must be that writer's.
        """
        if credential is None:
            return self.anonymous
        found = holder_of(credential.token, self.writers)
        if found is None or (credential.name is not None and credential.name != found.name):
            return None
        return WriterIdentity(found.name, found.targets)


def parse_writers(document: Any, source: str = "", ingest_token: str = "") -> Writers:
    """The writers of an access file's JSON (already decoded); ReadersError says what is wrong."""
    where = source or "access file"
    document = document if document is not None else {}
    if not isinstance(document, dict):
        raise ReadersError(f"{where}: must be a JSON object")
    taken: list[Principal] = []
    if ingest_token:
        digest = hashlib.sha256(ingest_token.encode("utf-8")).digest()
        taken.append(Principal(INGEST_TOKEN_WRITER, digest, OPEN_TARGETS, ("*",)))
    entries = entries_of(document, "writers", where, ANONYMOUS_WRITER, taken, no_colon=True)
    for entry in entries:
        if not entry.targets:
            raise ReadersError(f"{where}: writer {entry.name!r}: 'targets' is empty: a writer of nothing")
    targets = anonymous_targets(document, "anonymous_writer", where)
    anonymous = WriterIdentity(ANONYMOUS_WRITER, targets) if targets is not None else None
    return Writers((*taken, *entries), anonymous, source)


def writers_for(env: Mapping[str, str], interfaces: Iterable[str], ingest_token: str = "") -> Writers:
    """The writers a beater starts with, failing closed (ReadersError says why it refuses).

    The access file's writers and anonymous writer, plus the ingest token's
    writer. When that names nobody, anonymous may write every index (but
    estrom's own and dot-indices), and only if every interface is loopback
    or ``ESTROM_ANONYMOUS_WRITES=all`` says an open write side is intended.
    """
    path = access_file(env)
    document = read_document(path) if path else None
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
