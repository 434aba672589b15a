"""What each process of a stack is given: its environment, its secret, its engine URLs.

One place for the rules every way of starting a stack follows: a test or
benchmark stack runs without a developer's own ``ESTROM_*`` settings; the
router gets every principal's secret, a beater or tailor only its own; and
the engine a stack runs is chosen by ``ESTROM_ENGINE_DIST``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from devstack.engine import ENGINE_VERSION, ensure_engine, parse_dist
from devstack.router import SECRET_VARS

#: Which engine distribution a stack provisions and runs (default: the tested one).
ENGINE_DIST_VAR = "ESTROM_ENGINE_DIST"
DEFAULT_ENGINE_DIST = f"elasticsearch-{ENGINE_VERSION}"
#: The listen address of a service on any free loopback port (it reports the port it got).
ANY_PORT = "tcp:0:interface=127.0.0.1"


#: Readers' quotas off: in test and benchmark stacks every anonymous client comes
#: from 127.0.0.1, one quota key for all of them. tests/readers sets the quotas it exercises
#: (as did the retired readers-flood study: docs/performance.md, "Answered questions").
UNLIMITED_QUOTAS = {
    "ESTROM_QUOTA_SUBSCRIPTIONS": "0",
    "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": "0",
    # Sid lookups too: every anonymous subscription to a sid the router has not seen yet costs
    # one, and a fast machine subscribes faster than the default 20 a second per address.
    "ESTROM_QUOTA_DESCRIBES_PER_SECOND": "0",
    "ESTROM_QUOTA_TAILS": "0",
    "ESTROM_QUOTA_TAILS_TOTAL": "0",
}


#: How many router nodes (partitions) a stack runs: common/router_tier.py, docs/scaling.md.
ROUTER_WORKERS_VAR = "ESTROM_ROUTER_WORKERS"
#: scripts/stack's choice when the variable is unset: one router node per this many cores.
#: Of the CPU estrom and the engine spend on a document, the router took 8 % (batched, 1 match
#: in 10) to 15 % (one matching document per request): at 15 % of 4 cores a node uses about
#: 60 % of its own, and the engine, beater and tailor keep the rest (docs/scaling.md,
#: "The router tier"). A 2-core machine gets 1.
CORES_PER_ROUTER_NODE = 4


def router_workers(env: Mapping[str, str], cores: int | None = None) -> int:
    """``ESTROM_ROUTER_WORKERS`` (at least 1); unset: 1, or one per ``CORES_PER_ROUTER_NODE`` of ``cores``."""
    raw = env.get(ROUTER_WORKERS_VAR, "").strip()
    if not raw:
        return 1 if cores is None else max(1, cores // CORES_PER_ROUTER_NODE)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(
            f"{ROUTER_WORKERS_VAR} must be a whole number of router nodes, at least 1, not {raw!r}"
        )
    return int(raw)


def without_estrom(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less every ``ESTROM_*`` variable: a test stack must not inherit a developer's settings."""
    return {k: v for k, v in env.items() if not k.startswith("ESTROM_")}


def secret_var(role: str) -> str:
    """The variable that holds the WAMP-CRA secret of ``role`` (beater, tailor, admin)."""
    return f"ESTROM_{role.upper()}_SECRET"


def router_env(base: Mapping[str, str], secrets: Mapping[str, str], **overrides: str) -> dict[str, str]:
    """The router's environment: ``base``, every principal's secret, then ``overrides``."""
    return {**base, **secrets, **overrides}


def engine_settings(urls: Sequence[str]) -> dict[str, str]:
    """The engine URLs as the services' setting: the one seam where a stack names its engines.

    Several URLs (several nodes) are joined with commas; until the engine client
    reads several, a stack runs one engine and this is its URL.
    """
    return {"ESTROM_ENGINE_URL": ",".join(u.rstrip("/") for u in urls)}


def service_env(
    role: str,
    base: Mapping[str, str],
    secrets: Mapping[str, str],
    *,
    engine_urls: Sequence[str],
    router_url: str,
    any_port: bool = True,
    **settings: str,
) -> dict[str, str]:
    """The environment of ``python -m <role>``: ``base`` without other principals' secrets, its own
    secret, the engine and router URLs, a free port (``any_port``), then ``settings``."""
    env = {k: v for k, v in base.items() if k not in SECRET_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    if secrets.get(secret_var(role)):
        env[secret_var(role)] = secrets[secret_var(role)]
    env |= engine_settings(engine_urls)
    env["ESTROM_ROUTER_URL"] = router_url
    if any_port:
        env[f"ESTROM_{role.upper()}_LISTEN"] = ANY_PORT
    return env | settings


def engine_dist(env: Mapping[str, str] | None = None) -> str:
    """``ESTROM_ENGINE_DIST``, or the tested engine."""
    env = os.environ if env is None else env
    return env.get(ENGINE_DIST_VAR, "").strip() or DEFAULT_ENGINE_DIST


def engine_home(dist: str) -> Path:
    """Provision ``dist`` (``elasticsearch-7.x.y``, ``opensearch-2.x.y``, ``opensearch-3.x.y``) once
    and return its home directory; the engine choice of every stack passes here."""
    return ensure_engine(parse_dist(dist))
