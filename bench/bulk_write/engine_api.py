"""The engine's REST API, plainly over urllib: no client library between the benchmark and the engine."""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def engine_call(engine_url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        engine_url + path, method=method, data=data, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read() or b"null")


def engine_name(engine_url: str) -> str:
    version = engine_call(engine_url, "GET", "/")["version"]
    return f"{version.get('distribution', 'elasticsearch')} {version['number']}"


def refresh_count(engine_url: str, index: str) -> int:
    """Refreshes of the index's primaries so far (the engine's own, and those a realtime get forced)."""
    stats = engine_call(engine_url, "GET", f"/{index}/_stats/refresh")
    return int(stats["_all"]["primaries"]["refresh"]["total"])
