"""Plain blocking HTTP for tests: requests to the beater, tailor and engine."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return Response(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def ingest(
    beater_url: str,
    index: str,
    docs: list[Any] | dict[str, Any] | bytes | str,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Response:
    if isinstance(docs, list):
        if content_type == "application/x-ndjson":
            body: bytes | str = "\n".join(json.dumps(d) for d in docs) + "\n"
        else:
            body = json.dumps(docs)
    elif isinstance(docs, dict):
        body = json.dumps(docs)
    else:
        body = docs
    return http(
        "POST",
        f"{beater_url}/api/v0.1/ingest/{index}",
        body,
        {"content-type": content_type, **(headers or {})},
        timeout=timeout,
    )


def engine_request(engine_url: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body) if body is not None else None
    resp = http(method, engine_url + path, data, {"content-type": "application/json"})
    assert resp.status < 300, resp.body
    return resp.json()
