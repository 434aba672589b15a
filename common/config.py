"""Settings: one frozen object, built once from the environment and passed down.

Every variable is listed in the README's configuration table; the defaults
match the contract's ports so that nothing needs configuring locally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar
from urllib.parse import urlsplit

from common.engine_urls import parse_urls
from common.errors import DEFAULT_RETRY_AFTER
from common.query.limits import QueryLimits
from common.quotas import QuotaLimits
from common.readers import OWN_PREFIX


class ConfigError(ValueError):
    """A variable is set to something we cannot use; raised at start-up, never later."""


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, minimum: N) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    return _number(env, name, default, minimum)


def _float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    return _number(env, name, float(default), float(minimum))


def _optional_int(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    """Unset or empty: None (the engine's own default)."""
    raw = env.get(name)
    if raw is None or raw == "":
        return None
    return _int(env, name, 0, minimum)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``; unset or empty: ``default``."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def _str(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


_SECRET_FIELDS = frozenset({"ingest_token", "beater_secret", "tailor_secret"})


def _secret(env: Mapping[str, str], name: str) -> str:
    """A router secret: unset means "join anonymously"; set but empty is a mistake
    (an unexpanded ``${VAR}``, a blank line in an env file) that stops the process."""
    raw = env.get(name)
    if raw is None:
        return ""
    if not raw.strip():
        raise ConfigError(
            f"{name} is set but empty: give the router principal's secret, or unset it to join anonymously"
        )
    return raw


def _token(env: Mapping[str, str], name: str) -> str:
    """The ingest bearer token: unset means "no authentication"; set but empty is a mistake.

    Surrounding whitespace is dropped (a trailing newline of an env file or a
    secret file): an RFC 6750 bearer token never holds whitespace, so no
    sender could send it. Whitespace or control characters inside cannot be
    sent in a header either, and stop the process.
    """
    raw = env.get(name)
    if raw is None:
        return ""
    token = raw.strip()
    if not token:
        raise ConfigError(
            f"{name} is set but empty: give the token senders must present, or unset it to turn "
            "ingest authentication off"
        )
    if any(not 0x21 <= ord(c) <= 0x7E for c in token):
        raise ConfigError(f"{name} must be printable ASCII without spaces (a bearer token)")
    return token


def router_page_origins(router_url: str) -> str:
    """The origins of the router's page, from its WebSocket URL (``ws://127.0.0.1:8080/ws``).

    ``http://<host>:<port>`` (``https`` for ``wss``) under both loopback
    names, and under the URL's host when it is another name (``router`` in
    a compose network), as the router allows them on its WebSocket; a
    default port is left out, as browsers send the origin.
    """
    parts = urlsplit(router_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port
    except ValueError:
        port = None
    hosts = ["127.0.0.1", "localhost"]
    if host not in (*hosts, "0.0.0.0", "::"):
        hosts.append(host)
    shown = "" if port is None or port == {"http": 80, "https": 443}[scheme] else f":{port}"
    return ",".join(f"{scheme}://{h}{shown}" for h in hosts)


def _cors_origins(env: Mapping[str, str]) -> str:
    """``ESTROM_TAILOR_CORS_ORIGIN`` as set (empty: none), else the router page's origins."""
    raw = env.get("ESTROM_TAILOR_CORS_ORIGIN")
    if raw is None:
        return router_page_origins(_str(env, "ESTROM_ROUTER_URL", Settings.router_url))
    return ",".join(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


def _quotas(env: Mapping[str, str]) -> QuotaLimits:
    try:
        return QuotaLimits.from_env(env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


@dataclass(frozen=True)
class Settings:
    """Everything a beater or tailor process reads from its environment."""

    engine_url: str = "http://127.0.0.1:9200"
    engine_timeout: float = 5.0
    engine_concurrency: int = 4
    router_url: str = "ws://127.0.0.1:8080/ws"
    realm: str = "estrom"
    beater_listen: str = "tcp:8081:interface=127.0.0.1"
    tailor_listen: str = "tcp:8082:interface=127.0.0.1"
    ingest_token: str = ""
    #: where the engine's bulk API is served: "" for the beater's own port, else its own listen address
    bulk_listen: str = ""
    #: who judges credentials on the bulk API and pass-through: "estrom" (writers) or "engine"
    bulk_auth: str = "estrom"
    #: largest bulk body (decoded), the engine's own default http.max_content_length
    bulk_max_body: int = 100 * 1024 * 1024
    #: seconds the engine may take to answer one forwarded request (a large bulk takes a while)
    bulk_timeout: float = 120.0
    #: seconds an index's ingest pipeline settings (default/final) are trusted before they are asked again
    bulk_pipeline_ttl: float = 5.0
    ingest_max_body: int = 64 * 1024 * 1024
    #: documents (items) one ingest request may hold; more is 413
    ingest_max_docs: int = 10_000
    #: how many times its encoded size a compressed ingest body may expand to (past 1 MiB decoded); more is 413
    ingest_max_ratio: int = 100
    #: nesting of objects and arrays in one document (the document itself is 1); deeper is rejected
    ingest_max_depth: int = 20
    # Registered queries (common/query/limits.py):
    query_max_bytes: int = QueryLimits.max_bytes
    query_max_depth: int = QueryLimits.max_depth
    query_max_clauses: int = QueryLimits.max_clauses
    # What a query may cost to build, and the fields queries add to the shared percolator index
    # (common/query/expensive.py, beater/store/budget.py):
    query_max_fields: int = QueryLimits.max_fields
    query_max_regex_length: int = QueryLimits.max_regex_length
    query_max_determinized_states: int = QueryLimits.max_determinized_states
    query_max_expansions: int = QueryLimits.max_expansions
    query_leading_wildcards: bool = QueryLimits.leading_wildcards
    fields_per_target: int = QueryLimits.fields_per_target
    fields_per_principal: int = QueryLimits.fields_per_principal
    batch_size: int = 250
    batch_linger_ms: float = 5.0
    queue_max_docs: int = 50_000
    publish_timeout: float = 5.0
    retry_after: int = DEFAULT_RETRY_AFTER
    #: seconds a SIGTERMed beater waits for requests in flight before answering them 503
    shutdown_grace: float = 10.0
    query_index_prefix: str = OWN_PREFIX
    percolate_mode: str = "auto"
    query_grace: float = 600.0
    query_sweep_interval: float = 30.0
    percolate_documents_min: int = 100
    log_level: str = "info"
    log_format: str = "text"
    # Tailor settings, all ``ESTROM_TAILOR_*``:
    #: seconds of silence after which a stream gets a whitespace heartbeat
    tailor_heartbeat: float = 15.0
    #: bytes one client may fall behind before it is dropped
    tailor_max_pending: int = 1024 * 1024
    tailor_send_buffer: int = 64 * 1024
    #: hits kept per sid so that SSE clients resume with Last-Event-ID
    tailor_sse_history: int = 1000
    #: seconds a sid stays subscribed after its last SSE client left, for it to reconnect
    tailor_sse_linger: float = 30.0
    #: largest ``n`` accepted (the engine's ``index.max_result_window``)
    tailor_max_backfill: int = 10_000
    #: seconds NDJSON/SSE streams wait for a lost router (then a gap notice) before ending with an error
    tailor_router_wait: float = 60.0
    #: origins whose pages may read tails (Access-Control-Allow-Origin), comma-separated; "*" for any
    #: page, "" for none; unset: the router page's origins (router_page_origins)
    tailor_cors_origin: str = "http://127.0.0.1:8080,http://localhost:8080"
    #: bytes of stored documents one tail's ``n=`` backfill holds at a time (one page)
    tailor_backfill_buffer: int = 1024 * 1024
    #: bytes all backfills of a tailor hold at a time; tails past it wait for their page
    tailor_backfill_total: int = 32 * 1024 * 1024
    #: seconds a client may take to read one backfill page before it is dropped
    tailor_backfill_stall: float = 60.0
    #: seconds a connection may take to send a request's headers, or stay idle between requests
    tailor_idle_timeout: float = 30.0
    #: seconds between second looks at open streams' targets (aliases, the access file); 0: never
    tailor_access_recheck: float = 10.0
    #: seconds an unknown sid is remembered as unknown (beater and tailor), and how many are
    unknown_sid_ttl: float = 5.0
    unknown_sid_cache: int = 10_000
    #: readers' quotas and trusted proxies (``ESTROM_QUOTA_*``, ``ESTROM_TRUSTED_PROXIES``): their
    #: defaults live in QuotaLimits, which the router reads without the rest of the settings
    quotas: QuotaLimits = field(default_factory=QuotaLimits)
    #: primary shards and replicas of each new percolator index (None: the engine's default)
    query_index_shards: int | None = None
    query_index_replicas: int | None = None
    # Router credentials (WAMP-CRA); an empty secret joins anonymously:
    beater_authid: str = "beater"
    beater_secret: str = ""
    tailor_authid: str = "tailor"
    tailor_secret: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``ESTROM_*`` variables; invalid values raise ConfigError."""
        env = os.environ if env is None else env
        d = cls()
        settings = cls(
            engine_url=_str(env, "ESTROM_ENGINE_URL", d.engine_url).rstrip("/"),
            engine_timeout=_float(env, "ESTROM_ENGINE_TIMEOUT", d.engine_timeout, 0.1),
            engine_concurrency=_int(env, "ESTROM_ENGINE_CONCURRENCY", d.engine_concurrency, 1),
            router_url=_str(env, "ESTROM_ROUTER_URL", d.router_url),
            realm=_str(env, "ESTROM_REALM", d.realm),
            beater_listen=_str(env, "ESTROM_BEATER_LISTEN", d.beater_listen),
            tailor_listen=_str(env, "ESTROM_TAILOR_LISTEN", d.tailor_listen),
            ingest_token=_token(env, "ESTROM_INGEST_TOKEN"),
            bulk_listen=_str(env, "ESTROM_BULK_LISTEN", d.bulk_listen),
            bulk_auth=_str(env, "ESTROM_BULK_AUTH", d.bulk_auth).lower(),
            bulk_max_body=_int(env, "ESTROM_BULK_MAX_BODY", d.bulk_max_body, 1),
            bulk_timeout=_float(env, "ESTROM_BULK_TIMEOUT", d.bulk_timeout, 0.1),
            bulk_pipeline_ttl=_float(env, "ESTROM_BULK_PIPELINE_TTL", d.bulk_pipeline_ttl, 0.0),
            ingest_max_body=_int(env, "ESTROM_INGEST_MAX_BODY", d.ingest_max_body, 1),
            ingest_max_docs=_int(env, "ESTROM_INGEST_MAX_DOCS", d.ingest_max_docs, 1),
            ingest_max_ratio=_int(env, "ESTROM_INGEST_MAX_RATIO", d.ingest_max_ratio, 1),
            ingest_max_depth=_int(env, "ESTROM_INGEST_MAX_DEPTH", d.ingest_max_depth, 1),
            query_max_bytes=_int(env, "ESTROM_QUERY_MAX_BYTES", d.query_max_bytes, 1),
            query_max_depth=_int(env, "ESTROM_QUERY_MAX_DEPTH", d.query_max_depth, 1),
            query_max_clauses=_int(env, "ESTROM_QUERY_MAX_CLAUSES", d.query_max_clauses, 1),
            query_max_fields=_int(env, "ESTROM_QUERY_MAX_FIELDS", d.query_max_fields, 1),
            query_max_regex_length=_int(env, "ESTROM_QUERY_MAX_REGEX_LENGTH", d.query_max_regex_length, 1),
            query_max_determinized_states=_int(
                env, "ESTROM_QUERY_MAX_DETERMINIZED_STATES", d.query_max_determinized_states, 1
            ),
            query_max_expansions=_int(env, "ESTROM_QUERY_MAX_EXPANSIONS", d.query_max_expansions, 1),
            query_leading_wildcards=_flag(env, "ESTROM_QUERY_LEADING_WILDCARDS", d.query_leading_wildcards),
            fields_per_target=_int(env, "ESTROM_FIELDS_PER_TARGET", d.fields_per_target, 0),
            fields_per_principal=_int(env, "ESTROM_FIELDS_PER_PRINCIPAL", d.fields_per_principal, 0),
            batch_size=_int(env, "ESTROM_BATCH_SIZE", d.batch_size, 1),
            batch_linger_ms=_float(env, "ESTROM_BATCH_LINGER_MS", d.batch_linger_ms),
            queue_max_docs=_int(env, "ESTROM_QUEUE_MAX_DOCS", d.queue_max_docs, 1),
            publish_timeout=_float(env, "ESTROM_PUBLISH_TIMEOUT", d.publish_timeout, 0.1),
            retry_after=_int(env, "ESTROM_RETRY_AFTER", d.retry_after, 1),
            shutdown_grace=_float(env, "ESTROM_SHUTDOWN_GRACE", d.shutdown_grace, 0.0),
            query_index_prefix=_str(env, "ESTROM_QUERY_INDEX_PREFIX", d.query_index_prefix),
            query_index_shards=_optional_int(env, "ESTROM_QUERY_INDEX_SHARDS", 1),
            query_index_replicas=_optional_int(env, "ESTROM_QUERY_INDEX_REPLICAS", 0),
            percolate_mode=_str(env, "ESTROM_PERCOLATE_MODE", d.percolate_mode).lower(),
            query_grace=_float(env, "ESTROM_QUERY_GRACE", d.query_grace, 0.0),
            query_sweep_interval=_float(env, "ESTROM_QUERY_SWEEP_INTERVAL", d.query_sweep_interval, 0.05),
            percolate_documents_min=_int(env, "ESTROM_PERCOLATE_DOCUMENTS_MIN", d.percolate_documents_min, 1),
            log_level=_str(env, "ESTROM_LOG_LEVEL", d.log_level).lower(),
            log_format=_str(env, "ESTROM_LOG_FORMAT", d.log_format).lower(),
            tailor_heartbeat=_float(env, "ESTROM_TAILOR_HEARTBEAT", d.tailor_heartbeat, 0.01),
            tailor_max_pending=_int(env, "ESTROM_TAILOR_MAX_PENDING", d.tailor_max_pending, 1024),
            tailor_send_buffer=_int(env, "ESTROM_TAILOR_SEND_BUFFER", d.tailor_send_buffer, 4096),
            tailor_sse_history=_int(env, "ESTROM_TAILOR_SSE_HISTORY", d.tailor_sse_history, 0),
            tailor_sse_linger=_float(env, "ESTROM_TAILOR_SSE_LINGER", d.tailor_sse_linger, 0.0),
            tailor_max_backfill=_int(env, "ESTROM_TAILOR_MAX_BACKFILL", d.tailor_max_backfill, 0),
            tailor_router_wait=_float(env, "ESTROM_TAILOR_ROUTER_WAIT", d.tailor_router_wait, 0.0),
            tailor_cors_origin=_cors_origins(env),
            tailor_backfill_buffer=_int(env, "ESTROM_TAILOR_BACKFILL_BUFFER", d.tailor_backfill_buffer, 4096),
            tailor_backfill_total=_int(env, "ESTROM_TAILOR_BACKFILL_TOTAL", d.tailor_backfill_total, 4096),
            tailor_backfill_stall=_float(env, "ESTROM_TAILOR_BACKFILL_STALL", d.tailor_backfill_stall, 0.1),
            tailor_idle_timeout=_float(env, "ESTROM_TAILOR_IDLE_TIMEOUT", d.tailor_idle_timeout, 0.1),
            tailor_access_recheck=_float(env, "ESTROM_TAILOR_ACCESS_RECHECK", d.tailor_access_recheck, 0.0),
            unknown_sid_ttl=_float(env, "ESTROM_UNKNOWN_SID_TTL", d.unknown_sid_ttl, 0.0),
            unknown_sid_cache=_int(env, "ESTROM_UNKNOWN_SID_CACHE", d.unknown_sid_cache, 0),
            quotas=_quotas(env),
            beater_authid=_str(env, "ESTROM_BEATER_AUTHID", d.beater_authid),
            beater_secret=_secret(env, "ESTROM_BEATER_SECRET"),
            tailor_authid=_str(env, "ESTROM_TAILOR_AUTHID", d.tailor_authid),
            tailor_secret=_secret(env, "ESTROM_TAILOR_SECRET"),
        )
        if settings.log_level not in ("debug", "info", "warn", "error"):
            raise ConfigError(f"ESTROM_LOG_LEVEL must be debug|info|warn|error, not {settings.log_level!r}")
        if settings.percolate_mode not in ("auto", "documents", "msearch"):
            raise ConfigError(
                f"ESTROM_PERCOLATE_MODE must be auto|documents|msearch, not {settings.percolate_mode!r}"
            )
        if settings.bulk_auth not in ("estrom", "engine"):
            raise ConfigError(f"ESTROM_BULK_AUTH must be estrom|engine, not {settings.bulk_auth!r}")
        if settings.log_format not in ("text", "json"):
            raise ConfigError(f"ESTROM_LOG_FORMAT must be text|json, not {settings.log_format!r}")
        if not settings.router_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"ESTROM_ROUTER_URL must be a ws:// or wss:// URL, not {settings.router_url!r}")
        try:
            parse_urls(settings.engine_url)  # one node URL or several, comma-separated
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return settings

    def bulk_engine_url(self) -> str:
        """The engine the bulk API forwards to: the first of ``ESTROM_ENGINE_URL``'s nodes."""
        return self.engine_url.split(",", 1)[0].strip().rstrip("/")

    def query_limits(self) -> QueryLimits:
        """The bounds every registered query is checked against."""
        return QueryLimits(
            max_bytes=self.query_max_bytes,
            max_depth=self.query_max_depth,
            max_clauses=self.query_max_clauses,
            max_fields=self.query_max_fields,
            max_regex_length=self.query_max_regex_length,
            max_determinized_states=self.query_max_determinized_states,
            max_expansions=self.query_max_expansions,
            leading_wildcards=self.query_leading_wildcards,
            fields_per_target=self.fields_per_target,
            fields_per_principal=self.fields_per_principal,
        )

    def cors_origins(self) -> tuple[str, ...]:
        """The origins ``ESTROM_TAILOR_CORS_ORIGIN`` allows (``("*",)`` for any page)."""
        return tuple(o.strip() for o in self.tailor_cors_origin.split(",") if o.strip())

    def as_dict(self) -> dict[str, object]:
        """For the start-up log line; the ingest token and secrets are never printed."""
        out: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = ("<set>" if value else "") if f.name in _SECRET_FIELDS else value
        return out
