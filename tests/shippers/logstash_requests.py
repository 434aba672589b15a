"""Logstash's ``elasticsearch`` output, replayed: the HTTP requests it makes, in its order, reacting as it does.

Logstash cannot run on the test machine, so this client makes the requests
logstash-output-elasticsearch (the 11.x/12.x line that Logstash 8.x ships)
makes against an Elasticsearch 7 endpoint, and decides what to do next from
each answer the way the plugin's code does. It is written from the plugin's
source, read in its repository logstash-plugins/logstash-output-elasticsearch
(what each step follows is named where it is done):

- ``lib/logstash/outputs/elasticsearch.rb`` (11.22 line): ``register``
  builds the client (whose pool runs the first health check at once), then a
  thread waits for a live connection and runs ``finish_register``: data
  stream version check, ``discover_cluster_uuid``, ``install_template``,
  ``setup_ilm if ilm_in_use?``. A ``ConfigurationError`` or any
  ``BadResponseCodeError`` there (but 429, retried) stops the pipeline
  ("Failed to bootstrap"); ``setup_ecs_compatibility_related_defaults`` gives
  the default index, rollover alias and template name.
- ``lib/logstash/outputs/elasticsearch/http_client/pool.rb`` (11.18+,
  serverless-aware): ``healthcheck!`` is ``HEAD`` of the health-check path
  (``/``), then ``GET /``; 401 and 403 on ``GET /`` are configuration errors;
  ``elasticsearch?`` wants, from 7.14 on, the ``X-Elastic-Product:
  Elasticsearch`` answer header; then the license checker.
- ``lib/logstash/outputs/elasticsearch/license_checker.rb``: ``GET
  /_license``; status ``active`` makes the connection alive, no license
  leaves it dead (Logstash then never sends anything).
- ``lib/logstash/outputs/elasticsearch/http_client/manticore_adapter.rb``:
  ``Content-Type: application/json`` on every request; every status outside
  2xx but 404 raises ``BadResponseCodeError``; user and password go as
  preemptive Basic authentication. Manticore (Apache HttpClient) adds
  ``Accept-Encoding: gzip,deflate`` and decodes compressed answers.
- ``lib/logstash/outputs/elasticsearch/http_client.rb`` (12.1.6's
  ``bulk``/``bulk_send``, ``prepare_user_agent``, ``exists?``,
  ``template_put``, ``rollover_alias_*``, ``ilm_policy_*``): the bulk body
  gzipped (``compression_level`` default 1, ``http_compression`` deprecated;
  ``lib/logstash/plugin_mixins/elasticsearch/api_configs.rb``) with
  ``Content-Encoding: gzip``, ``X-Elastic-Event-Count`` and
  ``X-Elastic-Uncompressed-Request-Length``; the ``x-elastic-product-origin:
  logstash-output-elasticsearch`` header is the one
  ``spec/integration/outputs/compressed_indexing_spec.rb`` expects. The
  version numbers in the ``User-Agent`` are illustrative.
- ``lib/logstash/outputs/elasticsearch/http_client_builder.rb``: the bulk
  path ``/_bulk?filter_path=errors,items.*.error,items.*.status``
  (``resolve_filter_path``) and the health-check path ``/``.
- ``lib/logstash/outputs/elasticsearch/data_stream_support.rb``: with
  ``data_stream`` unset (``auto``) on Logstash 8, whose
  ``pipeline.ecs_compatibility`` defaults to ``v8``, a configuration of only
  ``hosts``/``user``/``password`` resolves to data streams: ``create`` into
  ``logs-generic-default`` (or the event's ``data_stream.*``), the event's
  ``data_stream`` fields filled in, and no template management.
- ``lib/logstash/outputs/elasticsearch/ilm.rb`` (11.x): ``ilm_enabled =>
  auto`` is on for Elasticsearch 7+ when the index is the default one: the
  11.x line no longer asks ``_xpack`` whether ILM is there. Set-up:
  ``HEAD /<rollover alias>``, ``PUT /<alias-{now/d}-000001>`` with the write
  alias (400 taken as "exists"), ``GET /_ilm/policy/logstash-policy``, its
  ``PUT`` with ``default-ilm-policy.json``.
- ``lib/logstash/outputs/elasticsearch/template_manager.rb``: ``template_api
  => auto`` is the legacy ``_template`` below Elasticsearch 8; the name is
  the rollover alias when ILM is on, else ``template_name`` (``logstash``);
  ILM adds ``index.lifecycle.name``/``rollover_alias`` to the settings;
  ``HEAD /_template/<name>``, then ``PUT`` unless it exists. The body here is
  a subset of the plugin's ``templates/ecs-disabled/elasticsearch-7x.json``
  (legacy layout, as ``elasticsearch-8x.json`` beside it is in composable).
- ``lib/logstash/plugin_mixins/elasticsearch/common.rb`` (11.15+):
  ``discover_cluster_uuid`` is another ``GET /``; ``submit``: items 200/201
  succeed, 409 is dropped, 400/404 go to the dead letter queue (or are
  logged and dropped), every other status (429, 403, 5xx) is retried,
  resending only those actions, with exponential backoff, forever.

What is not replayed: the waits (the 2 s doubling backoff, the 5 s
resurrectionist), sniffing (off by default), the serverless branches, 413
splitting, and the retry of a whole bulk answered non-200 (raised here).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The plugin's default bulk path (http_client_builder.rb, resolve_filter_path).
BULK_PATH = "/_bulk?filter_path=errors,items.*.error,items.*.status"
#: ``compression_level``'s default (api_configs.rb: DEFAULT_ZIP_LEVEL).
ZIP_LEVEL = 1
#: Illustrative versions for the User-Agent (http_client.rb, prepare_user_agent).
LOGSTASH_VERSION = "8.19.0"
PLUGIN_VERSION = "12.1.6"
USER_AGENT = (
    f"Logstash/{LOGSTASH_VERSION} (OS=Linux-6.1.0-amd64; JVM=Eclipse Adoptium-21.0.7) "
    f"logstash-output-elasticsearch/{PLUGIN_VERSION}"
)
#: common.rb
DOC_SUCCESS_CODES = (200, 201)
DOC_CONFLICT_CODE = 409
DOC_DLQ_CODES = (400, 404)
#: elasticsearch.rb: DEFAULT_POLICY; default-ilm-policy.json.
DEFAULT_POLICY = "logstash-policy"
DEFAULT_ILM_POLICY = {
    "policy": {"phases": {"hot": {"actions": {"rollover": {"max_size": "25gb", "max_age": "30d"}}}}}
}
#: ilm.rb: the ``ilm_pattern`` default.
ILM_PATTERN = "{now/d}-000001"


def default_template_es7(index_patterns: str) -> dict[str, Any]:
    """A subset of templates/ecs-disabled/elasticsearch-7x.json: the ``_template`` body for Elasticsearch 7."""
    return {
        "index_patterns": index_patterns,
        "version": 60001,
        "settings": {"index.refresh_interval": "5s", "number_of_shards": 1},
        "mappings": {
            "dynamic_templates": [
                {
                    "message_field": {
                        "path_match": "message",
                        "match_mapping_type": "string",
                        "mapping": {"type": "text", "norms": False},
                    }
                },
                {
                    "string_fields": {
                        "match": "*",
                        "match_mapping_type": "string",
                        "mapping": {
                            "type": "text",
                            "norms": False,
                            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
                        },
                    }
                },
            ],
            "properties": {"@timestamp": {"type": "date"}, "@version": {"type": "keyword"}},
        },
    }


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


class ConfigurationError(Exception):
    """LogStash::ConfigurationError raised while registering: the pipeline does not start."""


class NoLiveConnection(Exception):
    """The URL stays dead (no license, no version): Logstash waits, sends nothing, and retries the check."""


class BootstrapFailed(Exception):
    """finish_register failed: 'Failed to bootstrap. Pipeline "main" is going to shut down'."""

    def __init__(self, cause: BadResponseCode | ConfigurationError) -> None:
        super().__init__(f"Failed to bootstrap: {cause}")
        self.cause = cause


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


class LogstashOutput:
    """One ``elasticsearch { hosts => ... }`` output of one pipeline, replayed against ``hosts``."""

    def __init__(self, config: OutputConfig) -> None:
        self.config = config
        url = urllib.parse.urlsplit(config.hosts)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 9200
        self._conn: http.client.HTTPConnection | None = None
        self.exchanges: list[Exchange] = []
        self.es_version: str | None = None
        self.cluster_uuid: str | None = None
        # elasticsearch.rb: setup_ecs_compatibility_related_defaults
        if config.ecs_compatibility == "disabled":
            self.default_index, self.rollover_alias, self.template_name = (
                "logstash-%{+yyyy.MM.dd}",
                "logstash",
                "logstash",
            )
        else:
            self.default_index = "ecs-logstash-%{+yyyy.MM.dd}"
            self.rollover_alias, self.template_name = "ecs-logstash", "ecs-logstash"
        self.index = self.default_index
        # data_stream_support.rb: data_stream unset on Logstash 8 resolves to true unless ECS is
        # disabled or the configuration sets an option data streams do not take (ilm_enabled is one;
        # hosts, user, password and ecs_compatibility are not).
        self.data_stream = config.ecs_compatibility != "disabled" and config.ilm_enabled == "auto"
        if self.data_stream:
            self.index = "logs-generic-default"  # setup_mapper_and_target
        # setup_template_manager_defaults: no template management for data streams.
        self.manage_template = not self.data_stream
        self.ilm_in_use: bool | None = None
        self.template_endpoint: str | None = None

    # -- transport (manticore_adapter.rb) ---------------------------------------------------

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

    # -- register: the pool's first health check (pool.rb, license_checker.rb) -----------

    def register(self) -> None:
        """``register`` then ``finish_register``, as the after-successful-connection thread runs it."""
        self.healthcheck()
        try:
            self.finish_register()
        except (BadResponseCode, ConfigurationError) as exc:
            raise BootstrapFailed(exc) from exc

    def healthcheck(self) -> None:
        try:
            self.perform("HEAD", "/")
            health_error = None
        except BadResponseCode as exc:
            health_error = exc
        try:
            root: Exchange | None = self.perform("GET", "/")
            root_error = None
        except BadResponseCode as exc:
            root, root_error = None, exc
        if root_error is not None and root_error.exchange.status == 401:
            raise ConfigurationError("Could not read Elasticsearch. Please check the credentials")
        if root_error is not None and root_error.exchange.status == 403:
            raise ConfigurationError("Could not read Elasticsearch. Please check the privileges")
        if root_error is None and not self._is_elasticsearch(root):
            raise ConfigurationError("Could not connect to a compatible version of Elasticsearch")
        if health_error is not None or root_error is not None:
            raise NoLiveConnection(str(health_error or root_error))
        assert root is not None
        version = root.json().get("version", {}).get("number")
        if version is None:
            raise NoLiveConnection("Failed to retrieve Elasticsearch version data from connected endpoint")
        self.es_version = version
        # license_checker.rb: appropriate_license? (get_license turns any error into {}).
        try:
            found = self.perform("GET", "/_license").json()
        except (BadResponseCode, ValueError):
            found = {}
        status = (found.get("license") or {}).get("status") if isinstance(found, dict) else None
        if status is None:
            raise NoLiveConnection("Could not connect to a compatible version of Elasticsearch (no license)")

    @staticmethod
    def _is_elasticsearch(root: Exchange | None) -> bool:
        """pool.rb: elasticsearch?"""
        if root is None:
            return False
        try:
            info = root.json()
            version = tuple(int(p) for p in info["version"]["number"].split("-")[0].split(".")[:3])
        except (ValueError, KeyError, TypeError):
            return False
        if version < (6, 0, 0):
            return False
        if version < (7, 0, 0):
            return info.get("tagline") == "You Know, for Search"
        if version < (7, 14, 0):
            flavor = info["version"].get("build_flavor")
            return flavor == "default" and info.get("tagline") == "You Know, for Search"
        return root.response_headers.get("x-elastic-product") == "Elasticsearch"

    @property
    def major(self) -> int:
        assert self.es_version is not None
        return int(self.es_version.split(".")[0])

    # -- finish_register (elasticsearch.rb, template_manager.rb, ilm.rb) ------------------

    def finish_register(self) -> None:
        if self.data_stream and tuple(int(p) for p in self.es_version.split(".")[:2]) < (7, 9):  # type: ignore[union-attr]
            raise ConfigurationError(
                "A data_stream configuration is only supported since Elasticsearch 7.9.0"
            )
        # common.rb: discover_cluster_uuid (its errors are only logged)
        with contextlib.suppress(BadResponseCode, ValueError):
            self.cluster_uuid = self.perform("GET", "/").json().get("cluster_uuid")
        self.ilm_in_use = self._ilm_in_use()
        if self.manage_template:
            self.install_template()
        if self.ilm_in_use:
            self.setup_ilm()

    def _ilm_in_use(self) -> bool:
        """ilm.rb: ilm_in_use? (auto: on for Elasticsearch 7+ when the alias is "set")."""
        enabled = self.config.ilm_enabled
        if enabled is False or enabled == "false":
            return False
        if enabled == "auto" and self.major < 7:
            return False
        return self.index == self.default_index  # ilm_alias_set? with the default rollover alias

    def install_template(self) -> None:
        """template_manager.rb: install_template, then http_client.rb's template_install."""
        if self.config.ecs_compatibility != "disabled":
            raise NotImplementedError("only the ecs-disabled default template is replayed")
        self.template_endpoint = "_index_template" if self.major >= 8 else "_template"
        template = default_template_es7(f"{self.template_name}-*")
        name = self.template_name
        if self.ilm_in_use:
            template["index_patterns"] = f"{self.rollover_alias}-*"
            template["settings"].update(
                {
                    "index.lifecycle.name": DEFAULT_POLICY,
                    "index.lifecycle.rollover_alias": self.rollover_alias,
                }
            )
            name = self.rollover_alias
        if self._exists(f"/{self.template_endpoint}/{name}"):
            return
        self.perform("PUT", f"/{self.template_endpoint}/{name}", dump(template).encode())

    def rollover_alias_exists(self, name: str) -> bool:
        """http_client.rb: rollover_alias_exists? is exists?(name), a HEAD of the bare name."""
        return self._exists(f"/{urllib.parse.quote(name, safe='')}")

    def setup_ilm(self) -> None:
        """ilm.rb: setup_ilm (the index becomes the rollover alias)."""
        self.index = self.rollover_alias
        if not self.rollover_alias_exists(self.rollover_alias):
            target = urllib.parse.quote(f"<{self.rollover_alias}-{ILM_PATTERN}>", safe="")
            payload = {"aliases": {self.rollover_alias: {"is_write_index": True}}}
            try:
                self.perform("PUT", f"/{target}", dump(payload).encode())
            except BadResponseCode as exc:
                if exc.exchange.status != 400:  # rollover_alias_put: 400 is "already exists"
                    raise
        if not self._exists(f"/_ilm/policy/{DEFAULT_POLICY}", use_get=True):
            self.perform("PUT", f"/_ilm/policy/{DEFAULT_POLICY}", dump(DEFAULT_ILM_POLICY).encode())

    # -- events (elasticsearch.rb event_action_tuple, data_stream_support.rb) -------------

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
