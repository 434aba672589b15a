"""Run the crossbar.io router from ``router/config.json`` in its own virtualenv.

The checked-in config holds the defaults (127.0.0.1:8080, realm ``estrom``);
we render a copy into a state directory with the listen address overridden,
so tests can run routers on free ports beside a developer's stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from devstack.processes import ManagedProcess

REPO = Path(__file__).resolve().parent.parent
ROUTER_DIR = REPO / "router"


def router_venv() -> Path:
    return Path(os.environ.get("ESTROM_ROUTER_VENV", REPO / ".venv-router"))


def render_config(cbdir: Path, *, host: str, port: int) -> Path:
    """Write ``cbdir/config.json``: the repo config with this listen address."""
    config: dict[str, Any] = json.loads((ROUTER_DIR / "config.json").read_text())
    for worker in config["workers"]:
        for transport in worker.get("transports", []):
            transport["endpoint"]["interface"] = host
            transport["endpoint"]["port"] = port
            for path in transport.get("paths", {}).values():
                if path.get("type") == "static":
                    path["directory"] = str((ROUTER_DIR / path["directory"]).resolve())
    cbdir.mkdir(parents=True, exist_ok=True)
    target = cbdir / "config.json"
    target.write_text(json.dumps(config, indent=2))
    return target


def router_process(
    cbdir: Path, *, host: str, port: int, log_path: Path, echo: bool = False
) -> ManagedProcess:
    render_config(cbdir, host=host, port=port)
    crossbar = router_venv() / "bin" / "crossbar"
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return ManagedProcess(
        "router",
        [str(crossbar), "start", "--cbdir", str(cbdir), "--loglevel", "warn"],
        env=env,
        cwd=cbdir,
        log_path=log_path,
        echo=echo,
        color=1,
    )
