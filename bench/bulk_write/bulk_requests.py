"""The bulk requests both sides send, and the one persistent connection a shipper sends them on."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from dataclasses import dataclass

#: Logstash's and libbeat's ``filter_path`` on every bulk.
SHIPPER_FILTER = "errors,items.*.error,items.*.status"


def bulk_body(index: str, start: int, docs: int, pad: int = 200) -> bytes:
    lines = []
    for n in range(start, start + docs):
        lines.append(b'{"index":{"_index":"%s"}}' % index.encode())
        level = "error" if n % 10 == 0 else "info"
        doc = {"level": level, "n": n, "ssn": f"000-00-{n % 10000:04d}", "message": "x" * pad}
        lines.append(json.dumps(doc).encode())
    return b"\n".join(lines) + b"\n"


def matching(start: int, docs: int) -> int:
    """How many documents of ``bulk_body(_, start, docs)`` the tails match (``level:error``)."""
    return sum(1 for n in range(start, start + docs) if n % 10 == 0)


@dataclass
class Answer:
    seconds: float
    size: int
    unpublished: int


class Poster:
    """One persistent connection, as a shipper keeps one."""

    def __init__(self, url: str, query: str = "") -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
        self.path = "/_bulk" + (f"?{query}" if query else "")

    def bulk(self, body: bytes) -> Answer:
        started = time.perf_counter()
        self.conn.request("POST", self.path, body, {"content-type": "application/x-ndjson"})
        resp = self.conn.getresponse()
        answer = resp.read()
        elapsed = time.perf_counter() - started
        if resp.status != 200 or json.loads(answer).get("errors") is not False:
            raise RuntimeError(f"{self.path} answered {resp.status}: {answer[:300]!r}")
        return Answer(elapsed, len(answer), int(resp.getheader("X-Estrom-Unpublished") or 0))
