"""Logstash's ``elasticsearch`` output, replayed: its events as bulk actions, and what it makes of each item.

The action tuple of each event (``elasticsearch.rb``, ``data_stream_support.rb``),
the gzipped bulk request (``http_client.rb``) and ``submit``'s per-item
decisions (``common.rb``), on top of the start-up in ``bootstrap.py``.
The package's docstring names the plugin's sources for the whole replay.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.shippers.logstash.bootstrap import LogstashBootstrap
from tests.shippers.logstash.transport import BadResponseCode, Exchange, dump

#: The plugin's default bulk path (http_client_builder.rb, resolve_filter_path).
BULK_PATH = "/_bulk?filter_path=errors,items.*.error,items.*.status"
#: ``compression_level``'s default (api_configs.rb: DEFAULT_ZIP_LEVEL).
ZIP_LEVEL = 1
#: common.rb
DOC_SUCCESS_CODES = (200, 201)
DOC_CONFLICT_CODE = 409
DOC_DLQ_CODES = (400, 404)


@dataclass
class Round:
    """One bulk request of ``retrying_submit`` and what ``submit`` made of its answer."""

    exchange: Exchange
    actions: list[tuple[str, dict[str, Any], dict[str, Any]]]
    succeeded: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # 409
    dead_lettered: list[int] = field(default_factory=list)  # 400, 404
    retried: list[int] = field(default_factory=list)  # anything else


@dataclass
class Submission:
    rounds: list[Round]
    #: Actions still to retry when the replay stopped (Logstash would go on retrying them).
    pending: list[tuple[str, dict[str, Any], dict[str, Any]]]


class LogstashOutput(LogstashBootstrap):
    """One ``elasticsearch { hosts => ... }`` output of one pipeline, replayed against ``hosts``."""

    def action_for(self, event: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """The (action, params, source) tuple; params keep their nil ``_id`` and ``routing``."""
        source = json.loads(json.dumps(event))
        if self.data_stream:
            ds = source.get("data_stream")
            target = self.index
            if isinstance(ds, dict):  # data_stream_auto_routing
                target = "-".join(
                    (ds.get("type", "logs"), ds.get("dataset", "generic"), ds.get("namespace", "default"))
                )
            else:
                ds = source["data_stream"] = {}
            ds.setdefault("type", "logs")
            ds.setdefault("dataset", "generic")
            ds.setdefault("namespace", "default")
            return ("create", {"_id": None, "_index": target, "routing": None}, source)
        return ("index", {"_id": None, "_index": self._sprintf_index(source), "routing": None}, source)

    def _sprintf_index(self, source: dict[str, Any]) -> str:
        if "%{+yyyy.MM.dd}" not in self.index:
            return self.index
        stamp = datetime.fromisoformat(source["@timestamp"].replace("Z", "+00:00")).astimezone(UTC)
        return self.index.replace("%{+yyyy.MM.dd}", stamp.strftime("%Y.%m.%d"))

    def multi_receive(self, events: list[dict[str, Any]], max_rounds: int = 1) -> Submission:
        """retrying_submit, stopped after ``max_rounds`` bulk requests (Logstash never stops)."""
        pending = [self.action_for(e) for e in events]
        rounds: list[Round] = []
        while pending and len(rounds) < max_rounds:
            one = self.submit(pending)
            rounds.append(one)
            pending = [one.actions[i] for i in one.retried]
        return Submission(rounds, pending)

    def submit(self, actions: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Round:
        """http_client.rb: bulk/bulk_send; common.rb: submit's per-item decisions."""
        body = "".join(f"{dump({a: p})}\n{dump(s)}\n" for a, p, s in actions).encode()
        headers = {
            "X-Elastic-Event-Count": str(len(actions)),
            "X-Elastic-Uncompressed-Request-Length": str(len(body)),
            "Content-Encoding": "gzip",
        }
        exchange = self.perform(
            "POST", BULK_PATH, body, headers, wire_body=gzip.compress(body, compresslevel=ZIP_LEVEL)
        )
        if exchange.status != 200:
            raise BadResponseCode(exchange)  # safe_bulk would retry the whole bulk
        answer = exchange.json()
        one = Round(exchange, actions)
        if not answer.get("errors"):
            one.succeeded = list(range(len(actions)))
            return one
        items = answer["items"]
        if len(items) != len(actions):
            raise AssertionError(
                f"Sent {len(actions)} documents but Elasticsearch returned {len(items)} responses"
            )
        for i, item in enumerate(items):
            ((_, props),) = item.items()
            status = props.get("status")
            if status in DOC_SUCCESS_CODES:
                one.succeeded.append(i)
            elif status == DOC_CONFLICT_CODE:
                one.dropped.append(i)
            elif status in DOC_DLQ_CODES:
                one.dead_lettered.append(i)
            else:
                one.retried.append(i)
        return one
