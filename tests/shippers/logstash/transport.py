"""Logstash's ``elasticsearch`` output, replayed: its HTTP client, the requests as they go on the wire.

Follows ``lib/logstash/outputs/elasticsearch/http_client/manticore_adapter.rb``
(headers, Basic authentication, which statuses raise) and the pool's one
keep-alive connection; every exchange is kept for the tests to read. The
steps that use it are in ``bootstrap.py`` and ``bulk.py``;
The package's docstring names the plugin's sources for the whole replay.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

#: Illustrative versions for the User-Agent (http_client.rb, prepare_user_agent).
LOGSTASH_VERSION = "8.19.0"
PLUGIN_VERSION = "12.1.6"
USER_AGENT = (
    f"Logstash/{LOGSTASH_VERSION} (OS=Linux-6.1.0-amd64; JVM=Eclipse Adoptium-21.0.7) "
    f"logstash-output-elasticsearch/{PLUGIN_VERSION}"
)


def dump(value: Any) -> str:
    """LogStash::Json.dump: compact JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Exchange:
    """One request as sent (body before compression) and its answer (decoded)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    response_headers: dict[str, str]
    response: bytes

    def json(self) -> Any:
        return json.loads(self.response)

    @property
    def line(self) -> tuple[str, str, int]:
        return (self.method, self.path, self.status)


class BadResponseCode(Exception):
    """pool.rb's BadResponseCodeError: any status outside 2xx but 404."""

    def __init__(self, exchange: Exchange) -> None:
        super().__init__(f"{exchange.method} {exchange.path}: {exchange.status} {exchange.response[:500]!r}")
        self.exchange = exchange


@dataclass
class OutputConfig:
    """The plugin's settings that matter here; everything else at its default."""

    hosts: str
    user: str | None = None
    password: str | None = None
    #: Logstash 8's ``pipeline.ecs_compatibility`` default; ``disabled`` is Logstash 7's naming.
    ecs_compatibility: str = "v8"
    #: ``auto`` (default), ``True`` or ``False``.
    ilm_enabled: str | bool = "auto"


class LogstashTransport:
    """The output's HTTP client against ``hosts``: one pooled keep-alive connection, every exchange kept."""

    def __init__(self, config: OutputConfig) -> None:
        self.config = config
        url = urllib.parse.urlsplit(config.hosts)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 9200
        self._conn: http.client.HTTPConnection | None = None
        self.exchanges: list[Exchange] = []

    def _headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "x-elastic-product-origin": "logstash-output-elasticsearch",
            **(extra or {}),
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip,deflate",
            "Connection": "Keep-Alive",
        }
        if self.config.user and self.config.password:
            token = base64.b64encode(f"{self.config.user}:{self.config.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        return headers

    def perform(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        wire_body: bytes | None = None,
    ) -> Exchange:
        """One request on the pooled keep-alive connection; raises BadResponseCode as the adapter does."""
        sent = self._headers(headers)
        payload = wire_body if wire_body is not None else body
        for attempt in (1, 2):  # a stale pooled connection is replaced once, as HttpClient does
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
            try:
                self._conn.request(method, path, body=payload, headers=sent)
                resp = self._conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        answer_headers = {k.lower(): v for k, v in resp.getheaders()}
        if answer_headers.get("content-encoding", "").lower() == "gzip":
            raw = gzip.decompress(raw)
        if answer_headers.get("connection", "").lower() == "close":
            self.close()
        exchange = Exchange(method, path, sent, body, resp.status, answer_headers, raw)
        self.exchanges.append(exchange)
        if exchange.status < 200 or (exchange.status > 299 and exchange.status != 404):
            raise BadResponseCode(exchange)
        return exchange

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _exists(self, path: str, use_get: bool = False) -> bool:
        """http_client.rb: exists? (2xx: yes; 404: no; anything else raises)."""
        exchange = self.perform("GET" if use_get else "HEAD", path)
        return 200 <= exchange.status <= 299
