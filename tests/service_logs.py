"""What the services logged while a test ran: attached to the test's report when it fails.

A failure on a loaded machine is rarely reproduced at will; the beaters',
tailors' and routers' own lines from the seconds the test ran (estrom's
structured events, warnings and errors, not the WAMP library's chatter;
crossbar's lines, which it logs at warn level and above only) say
which step waited or refused, in the report that CI prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

#: ``2026-12-06T19:32:22Z info  beater router.joined realm=estrom ...``
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\w+)\s+\S+ (\S+)")
#: crossbar's, at warn level and above only: ``2026-12-06T20:30:28+0000 [Router      17078] ...``
_ROUTER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\+0000 \[\w+\s+\d+\] \S")
#: estrom's events are dotted names (``ingest.aliases_unread``); other debug lines are libraries' prose
_EVENT = re.compile(r"^[a-z_]+\.[a-z_.]+$")


def _kept(level: str, first_word: str) -> bool:
    return level != "debug" or bool(_EVENT.match(first_word))


def excerpt(directories: Iterable[Path], since: float, per_file: int = 40) -> str:
    """Lines logged at or after ``since`` (epoch seconds) by the services under ``directories``."""
    cutoff = datetime.fromtimestamp(int(since), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts: list[str] = []
    for directory in directories:
        for log in sorted(directory.rglob("*.log")):
            if "engine" in log.parts or log.stat().st_mtime < since:
                continue
            kept = []
            for line in log.read_text(errors="replace").splitlines():
                match = _LINE.match(line)
                if match and match.group(1) >= cutoff and _kept(match.group(2), match.group(3)):
                    kept.append(line[:300])
                    continue
                router = _ROUTER_LINE.match(line)
                if router and router.group(1) + "Z" >= cutoff:
                    kept.append(line[:300])
            if kept:
                parts.append(f"== {log.parent.name}/{log.name}\n" + "\n".join(kept[-per_file:]))
    return "\n".join(parts)
