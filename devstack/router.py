"""Run the crossbar.io router from ``router/config.json`` in its own virtualenv.

The checked-in config holds the defaults (127.0.0.1:8080, realm ``estrom``,
the roles, WAMP-CRA principals whose secrets crossbar reads from
``${ESTROM_*_SECRET}``). We render a copy into a state directory with the
listen address overridden, so tests can run routers on free ports beside a
developer's stack; its relative paths (the static directories, and the
worker's ``pythonpath`` to ``router/estrom_router/``, the browsers' embedded
authorizer) made absolute; and the security knobs applied from the environment:

- ``ESTROM_ROUTER_ANONYMOUS=0`` removes anonymous (browser) access;
- ``ESTROM_ROUTER_ALLOWED_ORIGINS`` (comma-separated, ``*`` wildcards) sets
  the WebSocket's allowed origins; by default only the router's own page;
- ``ESTROM_ADMIN_SECRET`` adds the ``admin`` principal (meta API, tests);
- a principal whose secret variable is unset is left out: it cannot log in;
  one set but empty is an error (``EmptySecret``), never a principal with an
  empty secret.

Secrets stay in the environment; the rendered file names variables only. The
router always runs at ``warn`` level: crossbar's debug and trace levels log
configuration and WAMP messages, which is no place for operators' data.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common.access.access_file import access_file, readers_for
from common.environment import flag
from deploy.router_config import partition_node
from devstack.processes import ManagedProcess

REPO = Path(__file__).resolve().parent.parent
ROUTER_DIR = REPO / "router"

#: authid variable, default authid, secret variable, role of each principal
PRINCIPALS = (
    ("ESTROM_BEATER_AUTHID", "beater", "ESTROM_BEATER_SECRET", "beater"),
    ("ESTROM_TAILOR_AUTHID", "tailor", "ESTROM_TAILOR_SECRET", "tailor"),
    (None, "admin", "ESTROM_ADMIN_SECRET", "admin"),
)
SECRET_VARS = tuple(secret_var for _, _, secret_var, _ in PRINCIPALS)
#: crossbar's log level when we run it: never debug or trace.
ROUTER_LOG_LEVEL = "warn"


class EmptySecret(ValueError):
    """A secret variable is set but empty: a mistake to stop at, not a principal to create."""


def empty_secrets(env: Mapping[str, str]) -> list[str]:
    """The router secret variables that are present in ``env`` but empty (or only whitespace)."""
    return [var for var in SECRET_VARS if var in env and not env[var].strip()]


def router_venv() -> Path:
    return Path(os.environ.get("ESTROM_ROUTER_VENV", REPO / ".venv-router"))


def allowed_origins(env: Mapping[str, str], host: str, port: int) -> list[str]:
    """``ESTROM_ROUTER_ALLOWED_ORIGINS`` or the router's own page (non-browser clients send none)."""
    raw = env.get("ESTROM_ROUTER_ALLOWED_ORIGINS", "")
    listed = [o.strip().rstrip("/") for o in raw.replace(" ", ",").split(",") if o.strip()]
    if listed:
        return [_with_port(o) for o in listed]
    hosts = ["127.0.0.1", "localhost"]
    if host not in ("127.0.0.1", "localhost", "0.0.0.0", "::", ""):
        hosts.append(host)
    return [f"http://{h}:{port}" for h in hosts]


def _with_port(origin: str) -> str:
    """autobahn matches patterns against ``scheme://host:port``, default port included."""
    scheme, sep, rest = origin.partition("://")
    if not sep or rest.endswith("*") or ":" in rest.rsplit("]", 1)[-1]:
        return origin
    default = {"http": 80, "https": 443}.get(scheme.lower())
    return f"{origin}:{default}" if default else origin


def _secure_websocket(path: dict[str, Any], env: Mapping[str, str], host: str, port: int) -> None:
    path.setdefault("options", {})["allowed_origins"] = allowed_origins(env, host, port)
    auth = path.setdefault("auth", {})
    empty = empty_secrets(env)
    if empty:
        raise EmptySecret(f"{', '.join(empty)} set but empty: give a secret, or unset the variable")
    users: dict[str, Any] = {}
    for authid_var, default_authid, secret_var, role in PRINCIPALS:
        if env.get(secret_var):
            authid = env.get(authid_var, "") if authid_var else ""
            users[authid or default_authid] = {"secret": "${" + secret_var + "}", "role": role}
    if users:
        auth["wampcra"] = {"type": "static", "users": users}
    else:
        auth.pop("wampcra", None)
    if not access_file(env):
        auth.pop("ticket", None)  # readers log in by ticket; without an access file there are none
    if not flag(env, "ESTROM_ROUTER_ANONYMOUS", True):
        auth.pop("anonymous", None)
    if not auth:
        raise ValueError("the router would let no one in: set ESTROM_*_SECRET or ESTROM_ROUTER_ANONYMOUS=1")


def render_config(
    cbdir: Path, *, host: str, port: int, env: Mapping[str, str] | None = None, partition: int = 0
) -> Path:
    """Write ``cbdir/config.json``: the repo config with this listen address and ``env``'s security;
    ``partition`` > 0: a node of that partition that is not the front (``partition_node``)."""
    env = os.environ if env is None else env
    # Readers: refuse a non-loopback router without an access file or the opt-in.
    readers_for(env, [host], "router")
    config: dict[str, Any] = json.loads((ROUTER_DIR / "config.json").read_text())
    for worker in config["workers"]:
        options = worker.get("options", {})
        if "pythonpath" in options:
            options["pythonpath"] = [str((ROUTER_DIR / p).resolve()) for p in options["pythonpath"]]
        for transport in worker.get("transports", []):
            transport["endpoint"]["interface"] = host
            transport["endpoint"]["port"] = port
            for path in transport.get("paths", {}).values():
                if path.get("type") == "static":
                    path["directory"] = str((ROUTER_DIR / path["directory"]).resolve())
                elif path.get("type") == "websocket":
                    _secure_websocket(path, env, host, port)
            if partition:
                partition_node(transport)
    cbdir.mkdir(parents=True, exist_ok=True)
    target = cbdir / "config.json"
    target.write_text(json.dumps(config, indent=2))
    return target


def generate_secrets() -> dict[str, str]:
    """Fresh random secrets for every principal (tests, first start of the dev stack)."""
    return {var: secrets.token_urlsafe(24) for var in SECRET_VARS}


def load_or_create_secrets(path: Path) -> tuple[dict[str, str], bool]:
    """The dev stack's secrets, kept in ``path`` (``KEY=value`` lines, mode 0600).

    Returns ``(secrets, created)``: created is True the one time the file is
    written, so the caller prints them once.
    """
    if path.exists():
        values: dict[str, str] = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
        missing = [var for var in SECRET_VARS if not values.get(var)]
        if not missing:
            return values, False
        values.update({var: generate_secrets()[var] for var in missing})
    else:
        values = generate_secrets()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    lines = ["# estrom dev stack: router principals' secrets, generated once; delete to regenerate"]
    lines += [f"{key}={value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return values, True


def router_process(
    cbdir: Path,
    *,
    host: str,
    port: int,
    log_path: Path,
    echo: bool = False,
    env: Mapping[str, str] | None = None,
    partition: int = 0,
) -> ManagedProcess:
    """A router node as a child process; ``env`` (default: ours) carries the secrets and knobs."""
    proc_env = dict(os.environ if env is None else env)
    render_config(cbdir, host=host, port=port, env=proc_env, partition=partition)
    crossbar = router_venv() / "bin" / "crossbar"
    proc_env.setdefault("PYTHONUNBUFFERED", "1")
    return ManagedProcess(
        "router" if partition == 0 else f"router-{partition}",
        [str(crossbar), "start", "--cbdir", str(cbdir), "--loglevel", ROUTER_LOG_LEVEL],
        env=proc_env,
        cwd=cbdir,
        log_path=log_path,
        echo=echo,
        color=1,
    )
