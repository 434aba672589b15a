"""Settings: one frozen object, built once from the environment and passed down.

The one home of every default and of reading the environment: ``Settings``
for the beater and the tailor, ``CliSettings`` for the ``estrom`` command
(its defaults are where default services listen). Objects get what they
need from them as arguments. Read elsewhere: the readers' quotas
(``QuotaLimits``, which the router reads on its own, with the same readers:
``common/environment.py``) and the access file's variables
(``common/access/``). Every variable is listed in
the configuration reference; the defaults match the contract's ports so that
nothing needs configuring locally.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from common.access.access_file import access_file
from common.access.exposure import listen_interface
from common.access.quotas import QuotaLimits
from common.access.scopes import OWN_PREFIX
from common.engine_urls import parse_urls
from common.environment import ConfigError, flag, number, one_of, optional_integer, text
from common.errors import DEFAULT_RETRY_AFTER
from common.page_origins import router_page_origins
from common.partitions import router_urls
from common.query.limits import QueryLimits

#: ``ESTROM_PERCOLATE_MODE``: the percolate request's shape (``beater/matching/percolate.py``)
PERCOLATE_MODES = ("auto", "documents", "msearch")
#: ``ESTROM_BULK_AUTH``: estrom checks writers, or the engine checks its own credentials
BULK_AUTH_MODES = ("estrom", "engine")
LOG_LEVELS = ("debug", "info", "warn", "error")
LOG_FORMATS = ("text", "json")

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


def _cors_origins(env: Mapping[str, str]) -> str:
    """``ESTROM_TAILOR_CORS_ORIGIN`` as set (empty: none), else the router page's origins."""
    raw = env.get("ESTROM_TAILOR_CORS_ORIGIN")
    if raw is None:
        front = router_urls(text(env, "ESTROM_ROUTER_URL", Settings.router_url))[:1]
        return router_page_origins(front[0] if front else Settings.router_url)
    return ",".join(o.strip().rstrip("/") for o in raw.split(",") if o.strip())


@dataclass(frozen=True)
class Settings:
    """Everything a beater or tailor process reads from its environment."""

    engine_url: str = "http://127.0.0.1:9200"
    engine_timeout: float = 5.0
    engine_concurrency: int = 4
    #: the router nodes' URLs in partition order, comma-separated; the first is the front
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
    #: the percolate request's shape, one of PERCOLATE_MODES (beater/matching/percolate.py)
    percolate_mode: str = "auto"
    query_grace: float = 600.0
    query_sweep_interval: float = 30.0
    #: from this many documents on, ``auto`` percolates a batch in one request (``documents``)
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
    #: the longest ``delay=`` a tail or count may ask for (hits held for ordering, windows kept open)
    tailor_max_delay: float = 10.0
    #: seconds after an ``n=`` backfill (or a ``since=`` count) during which live hits are still
    #: checked against it: a sender may store a document a moment before its live hit arrives
    tailor_handover: float = 10.0
    #: seconds an ended or dropped stream's connection is given to take its last bytes
    tailor_close_grace: float = 30.0
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
        """Build settings from ``ESTROM_*`` variables; invalid values raise ConfigError.

        Each setting ``name`` is read from ``ESTROM_<NAME>``, as its default's
        type says (numbers at least their ``_LEAST``), unless ``_READERS`` or
        ``_CHOICES`` read it their way.
        """
        env = os.environ if env is None else env
        d = cls()
        values: dict[str, Any] = {}
        for f in fields(cls):
            name, default = f.name, getattr(d, f.name)
            variable = f"ESTROM_{name.upper()}"
            if name in _READERS:
                values[name] = _READERS[name](env, variable)
            elif name in _CHOICES:
                values[name] = one_of(env, variable, default, _CHOICES[name])
            elif isinstance(default, bool):
                values[name] = flag(env, variable, default)
            elif isinstance(default, int | float):
                values[name] = number(env, variable, default, type(default)(_LEAST.get(name, 0)))
            else:
                values[name] = text(env, variable, default)
        settings = cls(**values)
        urls = settings.router_urls
        if not urls or not all(url.startswith(("ws://", "wss://")) for url in urls):
            raise ConfigError(
                f"ESTROM_ROUTER_URL must be ws:// or wss:// URLs (one per router node, comma-separated), "
                f"not {settings.router_url!r}"
            )
        try:
            parse_urls(settings.engine_url)  # one node URL or several, comma-separated
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return settings

    @property
    def router_urls(self) -> list[str]:
        """The router nodes of ``ESTROM_ROUTER_URL``, in partition order (common/router_tier.py)."""
        return router_urls(self.router_url)

    def bulk_engine_url(self) -> str:
        """The engine the bulk API forwards to: the first of ``ESTROM_ENGINE_URL``'s nodes."""
        return self.engine_url.split(",", 1)[0].strip().rstrip("/")

    def query_limits(self) -> QueryLimits:
        """The bounds every registered query is checked against.

        Each of ``QueryLimits``' fields is the setting of that name
        (``fields_per_target``), else of ``query_`` and that name (``query_max_bytes``).
        """
        return QueryLimits(
            **{
                f.name: getattr(self, f.name if hasattr(self, f.name) else f"query_{f.name}")
                for f in fields(QueryLimits)
            }
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


#: The least value of each number setting read from the environment (0 where not listed).
_LEAST: dict[str, float] = {
    "engine_timeout": 0.1,
    "engine_concurrency": 1,
    "bulk_max_body": 1,
    "bulk_timeout": 0.1,
    "ingest_max_body": 1,
    "ingest_max_docs": 1,
    "ingest_max_ratio": 1,
    "ingest_max_depth": 1,
    "query_max_bytes": 1,
    "query_max_depth": 1,
    "query_max_clauses": 1,
    "query_max_fields": 1,
    "query_max_regex_length": 1,
    "query_max_determinized_states": 1,
    "query_max_expansions": 1,
    "batch_size": 1,
    "queue_max_docs": 1,
    "publish_timeout": 0.1,
    "retry_after": 1,
    "query_sweep_interval": 0.05,
    "percolate_documents_min": 1,
    "tailor_heartbeat": 0.01,
    "tailor_max_pending": 1024,
    "tailor_send_buffer": 4096,
    "tailor_backfill_buffer": 4096,
    "tailor_backfill_total": 4096,
    "tailor_backfill_stall": 0.1,
    "tailor_idle_timeout": 0.1,
}
#: Settings that take one of a few values (read in lower case).
_CHOICES: dict[str, tuple[str, ...]] = {
    "bulk_auth": BULK_AUTH_MODES,
    "percolate_mode": PERCOLATE_MODES,
    "log_level": LOG_LEVELS,
    "log_format": LOG_FORMATS,
}
#: Settings read their own way: ``reader(env, variable)``.
_READERS: dict[str, Callable[[Mapping[str, str], str], Any]] = {
    "engine_url": lambda env, variable: text(env, variable, Settings.engine_url).rstrip("/"),
    "ingest_token": _token,
    "beater_secret": _secret,
    "tailor_secret": _secret,
    "tailor_cors_origin": lambda env, _variable: _cors_origins(env),
    "quotas": lambda env, _variable: QuotaLimits.from_env(env),
    # unset: the engine's default
    "query_index_shards": lambda env, variable: optional_integer(env, variable, 1),
    "query_index_replicas": lambda env, variable: optional_integer(env, variable, 0),
}


def local_url(listen: str) -> str:
    """The ``http://`` URL that reaches a listen address from this host.

    ``tcp:8081:interface=127.0.0.1`` is ``http://127.0.0.1:8081``; every
    interface (none named, ``0.0.0.0``, ``::``) is reached on ``127.0.0.1``.
    """
    parts = listen.split(":")
    port = next((p.removeprefix("port=") for p in parts[1:] if p.removeprefix("port=").isdigit()), "")
    host = listen_interface(listen)
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class CliSettings:
    """What the ``estrom`` command reads from its environment: where the services are, its secrets.

    The services' addresses default to where a beater and a tailor with
    default ``Settings`` listen, and to the engine, router and realm they use.
    """

    tailor_url: str = local_url(Settings.tailor_listen)
    beater_url: str = local_url(Settings.beater_listen)
    engine_url: str = Settings.engine_url
    router_url: str = Settings.router_url
    realm: str = Settings.realm
    query_index_prefix: str = Settings.query_index_prefix
    #: a reader's token (``tail``, ``counts``); none: anonymous
    token: str = ""
    #: the writer's token ``post`` sends
    ingest_token: str = ""
    #: the login of ``queries`` on the router's meta API; no secret: no subscriber counts
    admin_authid: str = "admin"
    admin_secret: str = ""
    #: the access file ``readers add`` and ``writers add`` edit
    access_file: str = ""
    #: https://no-color.org: set and not empty, ``tail --color auto`` prints no colors
    no_color: bool = False
    #: documents per ingest request of ``post``
    post_batch: int = 500
    #: retries of one ``post`` request answered 429 or 503
    post_max_retries: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CliSettings:
        env = os.environ if env is None else env
        d = cls()
        return cls(
            tailor_url=text(env, "ESTROM_TAILOR_URL", d.tailor_url),
            beater_url=text(env, "ESTROM_BEATER_URL", d.beater_url),
            engine_url=text(env, "ESTROM_ENGINE_URL", d.engine_url),
            router_url=text(env, "ESTROM_ROUTER_URL", d.router_url),
            realm=text(env, "ESTROM_REALM", d.realm),
            query_index_prefix=text(env, "ESTROM_QUERY_INDEX_PREFIX", d.query_index_prefix),
            token=text(env, "ESTROM_TOKEN", d.token),
            ingest_token=text(env, "ESTROM_INGEST_TOKEN", d.ingest_token),
            admin_secret=text(env, "ESTROM_ADMIN_SECRET", d.admin_secret),
            access_file=access_file(env),
            no_color=bool(env.get("NO_COLOR")),
        )
