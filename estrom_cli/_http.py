"""Blocking HTTP helpers shared by the subcommands."""

from __future__ import annotations

import http.client
import json
import sys
import urllib.parse
from typing import Any


class CliError(Exception):
    """Something the user should read as one line on stderr; the command exits 1."""


def connect(base_url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    """A connection to ``base_url`` and the path prefix to put before API paths."""
    url = urllib.parse.urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise CliError(f"not an http(s) URL: {base_url!r}")
    cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    return cls(url.hostname, url.port, timeout=timeout), url.path.rstrip("/")


def error_reason(status: int, body: bytes) -> str:
    """``"400 invalid_query: reason"`` from the services' JSON error body, or the raw text."""
    try:
        doc: Any = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return f"{status} {text[:300]}" if text else str(status)
    if isinstance(doc, dict) and "error" in doc:
        # One line: the engine's reasons (a parser's "Was expecting one of: ...") span many.
        reason = " ".join(str(doc.get("reason") or "").split())
        return f"{status} {doc['error']}" + (f": {reason}" if reason else "")
    return f"{status} {json.dumps(doc)[:300]}"


def open_stream(
    tailor: str, path: str, *, accept: str, token: str, timeout: float, what: str
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    """GET an endless stream of the tailor: the connection and its 200 response, or a CliError.

    A reader's token goes in the header, never in a URL that ends up in logs.
    """
    conn, base = connect(tailor, timeout)
    headers = {"Accept": accept}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request("GET", base + path, headers=headers)
        response = conn.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        conn.close()
        raise CliError(f"cannot reach the tailor at {tailor}: {exc}") from None
    if response.status != 200:
        body = response.read()
        conn.close()
        raise CliError(f"the tailor refused the {what}: {error_reason(response.status, body)}")
    return conn, response


def say(message: str) -> None:
    print(f"estrom: {message}", file=sys.stderr, flush=True)
