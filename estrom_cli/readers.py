"""``estrom readers add`` / ``estrom writers add NAME --targets ...``: a new principal, its token printed once.

The file is the access file ``ESTROM_ACCESS`` (or ``ESTROM_READERS``) names (or ``--file``); it is created
(mode 0600) when missing, checked as a whole before it replaces the old one
(atomically: a tailor reloading at that moment reads the old or the new
file, never half of one). Only ``sha256:<hex>`` of the token is written: the
token itself is shown this once, on standard output, so that scripts capture
it (``TOKEN=$(estrom readers add ...)``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, TextIO

from common.access.access_file import parse_readers
from common.access.errors import ReadersError
from common.access.tokens import new_token, token_hash
from common.access.writers import parse_writers
from estrom_cli._http import CliError, say


def add_reader(path: Path, name: str, targets: list[str], kind: str = "readers") -> str:
    """Add reader (or, ``kind="writers"``, writer) ``name`` of ``targets`` to the file at ``path``.

    Returns its new token. Readers and writers are named apart: the same
    name may be both, each with its own token.
    """
    if path.exists():
        try:
            document: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"{path}: cannot read it as JSON: {exc}") from None
    else:
        document = {kind: []}
    if not isinstance(document, dict) or not isinstance(document.setdefault(kind, []), list):
        raise CliError(f"{path}: not an access file (an object with a {kind!r} list)")
    what = kind[:-1]
    if any(isinstance(r, dict) and r.get("name") == name for r in document[kind]):
        raise CliError(f"{path}: a {what} named {name!r} exists already; remove it first to give a new token")
    token = new_token()
    document[kind].append({"name": name, "token": token_hash(token), "targets": targets})
    try:
        parse_readers(document, str(path))
        parse_writers(document, str(path))
    except ReadersError as exc:
        raise CliError(str(exc)) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".readers-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return token


def run_readers_add(file: str, name: str, targets: list[str], out: TextIO, kind: str = "readers") -> int:
    if not file:
        raise CliError(
            f"{kind} add: give --file, or set ESTROM_ACCESS (or ESTROM_READERS) to the access file"
        )
    token = add_reader(Path(file), name, targets, kind)
    print(token, file=out, flush=True)
    if kind == "writers":
        say(f"added writer {name!r} to {file}: the token above is shown once; beaters read the file at start")
    else:
        say(
            f"added reader {name!r} to {file}: the token above is shown once; "
            "tailors re-read the file on SIGHUP, the router when it changes"
        )
    return 0
