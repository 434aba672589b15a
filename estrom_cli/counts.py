"""``estrom counts``: live counts of a query, a small table redrawn in place (or a line per window).

On a terminal the table (value, count in the last window, a bar) is redrawn
each window; piped, each window is one line ``<t> total=<n> <value>=<n>...``
that a script can read, or with ``--json`` the tailor's frame as it came.
With ``--delay`` a window may come again, revised by hits later than the delay:
piped, as a line ending in ``(revised)``; on a terminal, redrawn if it is the
window shown.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any, TextIO

from estrom_cli._http import CliError, open_stream, say

READ_TIMEOUT = 60.0
BAR_WIDTH = 30


@dataclass(frozen=True)
class CountAsk:
    """What a counts request asks the tailor: built once from the command line, read by both the
    request and the drawing of its answers."""

    index: str | None
    query: str | None
    sid: str | None
    _: KW_ONLY
    by: str | None = None
    #: ``k`` and ``every`` left out (None) are the tailor's defaults
    k: int | None = None
    every: float | None = None
    since: str | None = None
    #: a duration (``2s``): count by ``@timestamp``, each window kept open that long for late hits
    delay: str | None = None
    limit: int = 0

    def path(self) -> str:
        """The counts request's path and query string."""
        params: dict[str, str] = (
            {"s": self.sid} if self.sid else {"i": self.index or "", "q": self.query or ""}
        )
        if self.by:
            params["by"] = self.by
            if self.k is not None:
                params["k"] = str(self.k)
        if self.every is not None:
            params["every"] = f"{self.every:g}"
        if self.since:
            params["since"] = self.since
        if self.delay:
            params["delay"] = self.delay
        if self.limit:
            params["limit"] = str(self.limit)
        return "/api/v0.1/counts?" + urllib.parse.urlencode(params)


def read_lines(response: http.client.HTTPResponse) -> Iterator[Any]:
    """Each NDJSON value as it arrives (``read1``: what has come, never waiting for a full buffer)."""
    buffer = b""
    while True:
        chunk = response.read1(65536)
        if not chunk:
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            if line.strip():
                yield json.loads(line)


def frame_line(frame: dict[str, Any]) -> str:
    """One window as one line: ``2026-12-01T11:09:00Z total=12 api=7 web=5``.

    ``(revised)`` ends the line of a window sent again (``--delay``: hits later than the delay).
    """
    parts = [frame["t"], f"total={frame['total']}"]
    parts += [f"{value}={n}" for value, n in frame.get("by", {}).items()]
    if frame.get("revised"):
        parts.append("(revised)")
    return " ".join(parts)


def frame_table(frame: dict[str, Any], by: str | None) -> list[str]:
    """One window as a small table: a header, then value, count and a bar per row."""
    rows = list(frame.get("by", {}).items()) if by else []
    rows = rows or [("total", frame["total"])]
    width = max([len(by or "query"), *(len(str(v)) for v, _ in rows)])
    top = max([n for _, n in rows] + [1])
    revised = " (revised)" if frame.get("revised") else ""
    lines = [
        f"{frame['t']}  total {frame['total']}/window{revised}",
        f"{(by or 'query'):<{width}}  {'count':>7}",
    ]
    for value, n in rows:
        bar = "#" * round(BAR_WIDTH * n / top)
        lines.append(f"{value!s:<{width}}  {n:>7}  {bar}")
    return lines


def run_counts(
    tailor: str, ask: CountAsk, *, as_json: bool, redraw: bool, quiet: bool, out: TextIO, token: str = ""
) -> int:
    """Count until the stream ends (``limit``) or breaks off: 0, or CliError with the reason."""
    conn, response = open_stream(
        tailor,
        ask.path(),
        accept="application/x-ndjson",
        token=token,
        timeout=READ_TIMEOUT + (ask.every or 0.0),
        what="counts",
    )
    drawn = 0
    shown: str | None = None  # the window the table shows
    try:
        for value in read_lines(response):
            if "subscription_id" in value:
                if not quiet:
                    say(f"counting {value['subscription_id']} on {tailor} (Ctrl-C to stop)")
            elif "gap" in value:
                say(f"hits may be missing here: {value['gap'].get('reason', '')}")
            elif "error" in value:
                raise CliError(f"the tailor ended the stream: {value['error']}: {value.get('reason', '')}")
            elif as_json:
                out.write(json.dumps(value, ensure_ascii=False) + "\n")
            elif redraw:
                if value.get("revised") and value["t"] != shown:
                    continue  # an older window than the one shown: the table stays on the newest
                shown = value["t"]
                lines = frame_table(value, ask.by)
                # Back to the top of the last table, clear to the end, draw anew.
                out.write((f"\033[{drawn}F\033[J" if drawn else "") + "\n".join(lines) + "\n")
                drawn = len(lines)
            else:
                out.write(frame_line(value) + "\n")
            out.flush()
    except TimeoutError:
        raise CliError(f"the tailor at {tailor} stopped answering") from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise CliError(f"the stream from {tailor} broke off: {exc}") from None
    finally:
        conn.close()
    return 0
