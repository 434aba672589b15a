"""The access file (``ESTROM_ACCESS``, or ``ESTROM_READERS``): its readers, parsed, checked, re-read.

One JSON file holds readers and writers (``common/access/writers.py`` reads
the writers' keys). Every problem is a :class:`ReadersError` that says
where and why: a service refuses to start on it, and a reload keeps the
rules in force.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.access.errors import ReadersError
from common.access.exposure import exposed_without_opt_in
from common.access.readers import ANONYMOUS, Identity, Readers
from common.access.scopes import Scope, scope_of
from common.access.tokens import HASH_PREFIX, Principal
from common.query.target_syntax import InvalidTarget


def access_file(env: Mapping[str, str]) -> str:
    """The access file's path: ``ESTROM_ACCESS``, else ``ESTROM_READERS`` (one file, either name)."""
    return (env.get("ESTROM_ACCESS", "") or env.get("ESTROM_READERS", "")).strip()


def read_document(path: str | os.PathLike[str]) -> Any:
    """The access file's JSON, decoded; ReadersError when it cannot be read or is not JSON."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReadersError(f"access file {p}: cannot read it: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ReadersError(f"access file {p}: not JSON: {exc}") from None


def configured_targets(value: Any, where: str) -> tuple[tuple[Scope, ...], tuple[str, ...]]:
    """An entry's ``targets``: each parsed (ReadersError names the one that is not a read target)."""
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
    """An entry's ``token`` (itself, or ``sha256:<hex>``) as the digest it is checked against."""
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


def entries_of(
    document: Mapping[str, Any],
    key: str,
    where: str,
    reserved: str,
    taken: Sequence[Principal] = (),
    no_colon: bool = False,
) -> list[Principal]:
    """The principals listed under ``key`` (``readers``, ``writers``), each checked.

    Names are unique and not ``reserved`` (the anonymous identity), tokens
    unique and secret enough; ``taken`` are principals that exist already
    (the ingest token's writer). ``no_colon``: the name is sent before a
    ``:`` (Basic, ApiKey), so it may not hold one.
    """
    listed = document.get(key, [])
    if not isinstance(listed, list):
        raise ReadersError(f"{where}: '{key}' must be a list")
    kind = key.removesuffix("s")
    found: list[Principal] = list(taken)
    for i, entry in enumerate(listed):
        at = f"{where}: {key}[{i}]"
        if not isinstance(entry, dict):
            raise ReadersError(f"{at}: must be an object with name, token, targets")
        name = entry.get("name")
        if not isinstance(name, str) or not name or name == reserved or (no_colon and ":" in name):
            without = " without ':'" if no_colon else ""
            raise ReadersError(f"{at}: 'name' must be a non-empty string{without} other than {reserved!r}")
        if any(e.name == name for e in found):
            raise ReadersError(f"{at}: name {name!r} appears twice (or is reserved)")
        digest = token_digest(entry.get("token"), f"{at} ({name})")
        if any(e.digest == digest for e in found):
            raise ReadersError(f"{at} ({name}): the same token as another {kind}")
        targets, raw = configured_targets(entry.get("targets"), f"{at} ({name})")
        found.append(Principal(name, digest, targets, raw))
    return found[len(taken) :]


def anonymous_targets(document: Mapping[str, Any], key: str, where: str) -> tuple[Scope, ...] | None:
    """The targets of the anonymous identity under ``key`` (``anonymous``, ``anonymous_writer``), if any."""
    if key not in document:
        return None
    anon = document[key]
    if not isinstance(anon, dict):
        raise ReadersError(f"{where}: '{key}' must be an object with 'targets'")
    targets, _ = configured_targets(anon.get("targets"), f"{where}: {key}")
    return targets


def parse_readers(document: Any, source: str = "") -> Readers:
    """The readers file's JSON (already decoded) as :class:`Readers`; ReadersError says what is wrong."""
    where = source or "readers file"
    if not isinstance(document, dict):
        raise ReadersError(f"{where}: must be a JSON object with 'readers' and/or 'anonymous'")
    # The writers' keys are read by common/access/writers.py: one access file for both.
    unknown = set(document) - {"readers", "anonymous", "writers", "anonymous_writer"}
    if unknown:
        raise ReadersError(f"{where}: unknown keys {sorted(unknown)}")
    readers = entries_of(document, "readers", where, ANONYMOUS)
    targets = anonymous_targets(document, "anonymous", where)
    anonymous = Identity(ANONYMOUS, targets) if targets is not None else None
    return Readers(tuple(readers), anonymous, source, {r.name: r for r in readers})


def load_readers(path: str | os.PathLike[str]) -> Readers:
    """Read and parse the readers of the access file at ``path``."""
    return parse_readers(read_document(path), str(path))


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
