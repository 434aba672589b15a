"""``scripts/stack``: the whole local stack in the foreground, stopped by Ctrl-C.

Engine data lives in a state directory (default ``.state/`` in the checkout)
so registered queries survive a restart of the stack. Unlike the tests'
stacks it runs with the developer's own ``ESTROM_*`` settings and on the
configured ports.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from pathlib import Path

from common.config import Settings
from devstack.router import REPO, SECRET_VARS, empty_secrets, load_or_create_secrets
from devstack.settings import router_workers
from devstack.stack import Stack

#: Where the partitions' router nodes listen beside the front (8080): 8090, 8091, ...
PARTITION_PORT_OFFSET = 10


def _port_of(url: str, default: int) -> int:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    return int(rest.rsplit(":", 1)[1]) if ":" in rest else default


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", default=os.environ.get("ESTROM_STATE_DIR", str(REPO / ".state")))
    parser.add_argument("--engine-heap", default=os.environ.get("ESTROM_ENGINE_HEAP", "512m"))
    args = parser.parse_args(argv)
    state = Path(args.state_dir).resolve()

    env = dict(os.environ)
    empty = empty_secrets(env)
    if empty:
        _say(f"failed: {', '.join(empty)} set but empty: give a secret, or unset it for a generated one")
        return 1
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    engine_url = env.setdefault("ESTROM_ENGINE_URL", Settings.engine_url)
    router_url = env.setdefault("ESTROM_ROUTER_URL", Settings.router_url)
    # Router principals' secrets: from the environment, else generated once
    # into the state dir so restarts keep them.
    secrets = {var: env[var] for var in SECRET_VARS if env.get(var)}
    if len(secrets) < len(SECRET_VARS):
        secrets_path = state / "secrets.env"
        stored, created = load_or_create_secrets(secrets_path)
        secrets = {var: secrets.get(var) or stored[var] for var in SECRET_VARS}
        # Never the values: the stack's output is often kept as a log.
        _say(f"{'generated' if created else 'using'} router secrets in {secrets_path} (mode 0600)")
    engine_port = _port_of(engine_url, 9200)
    router_port = _port_of(router_url.split(",", 1)[0], 8080)
    try:
        workers = router_workers(env, os.cpu_count())
    except ValueError as exc:
        _say(f"failed: {exc}")
        return 1
    # The other partitions' router nodes: the next ports after the front's plus ten (8090, ...).
    partition_port = router_port + PARTITION_PORT_OFFSET

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    stack = Stack(
        state,
        secrets=secrets,
        env=env,
        engine_heap=args.engine_heap,
        any_port=False,
        echo=True,
        router_workers=workers,
    )
    ports = [("engine", engine_port), ("router", router_port)]
    ports += [(f"router node {i}", partition_port + i - 1) for i in range(1, workers)]
    try:
        for what, port in ports:
            if port_in_use(port):
                raise RuntimeError(f"port {port} for the {what} is already in use: is a stack running?")
        with stack:
            _say(f"engine: starting {stack.engine_dist} on {engine_url} (log: {state / 'engine.log'})")
            stack.start_engine(http_port=engine_port, transport_port=engine_port + 100)
            _say("engine: ready")
            router = stack.start_router(port=router_port, partition_port=partition_port)
            _say(f"router: ready on {router.url} (page: http://127.0.0.1:{router_port}/)")
            if router.partitions:
                nodes = ", ".join(node.url for node in router.partitions)
                _say(f"router: {workers} partitions (ESTROM_ROUTER_WORKERS); the others' nodes: {nodes}")
            for role in ("beater", "tailor"):
                handle = stack.start_service(role)
                _say(f"{role}: ready on {handle.url}")
            _say("all up; Ctrl-C stops everything")
            services = [*stack.beaters, *stack.tailors]
            while not stopping.wait(0.5):
                gone = next((s for s in services if not s.process.alive()), None)
                if gone is not None:
                    _say(f"{gone.process.name} exited; stopping the stack")
                    break
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _say("stopping")
        _say("stopped")
        return 0
    except (RuntimeError, TimeoutError, ValueError) as exc:
        _say(f"failed: {exc}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
