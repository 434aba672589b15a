"""``scripts/stack``: the whole local stack in the foreground, stopped by Ctrl-C.

Engine data lives in a state directory (default ``.state/`` in the checkout)
so registered queries survive a restart of the stack.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from devstack.engine import DEFAULT_DIST, EngineNode, ensure_engine, selected_dist
from devstack.processes import ManagedProcess, wait_for_port
from devstack.router import REPO, SECRET_VARS, empty_secrets, load_or_create_secrets, router_process


def _port_of(url: str, default: int) -> int:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    return int(rest.rsplit(":", 1)[1]) if ":" in rest else default


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _say(msg: str) -> None:
    print(f"[stack] {msg}", flush=True)


def service_process(name: str, module: str, env: dict[str, str], state: Path, color: int) -> ManagedProcess:
    return ManagedProcess(
        name,
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        log_path=state / f"{name}.log",
        echo=True,
        color=color,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--state-dir", default=os.environ.get("ESTROM_STATE_DIR", str(REPO / ".state")))
    parser.add_argument("--engine-heap", default=os.environ.get("ESTROM_ENGINE_HEAP", "512m"))
    args = parser.parse_args(argv)
    state = Path(args.state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)

    env = dict(os.environ)
    empty = empty_secrets(env)
    if empty:
        _say(f"failed: {', '.join(empty)} set but empty: give a secret, or unset it for a generated one")
        return 1
    env.setdefault("PYTHONUNBUFFERED", "1")
    engine_url = env.setdefault("ESTROM_ENGINE_URL", "http://127.0.0.1:9200")
    router_url = env.setdefault("ESTROM_ROUTER_URL", "ws://127.0.0.1:8080/ws")
    # Router principals' secrets: from the environment, else generated once
    # into the state dir so restarts keep them.
    secrets_path = state / "secrets.env"
    if not all(env.get(var) for var in SECRET_VARS):
        stored, created = load_or_create_secrets(secrets_path)
        for var in SECRET_VARS:
            if not env.get(var):
                env[var] = stored[var]
        # Never the values: the stack's output is often kept as a log.
        _say(f"{'generated' if created else 'using'} router secrets in {secrets_path} (mode 0600)")
    engine_port = _port_of(engine_url, 9200)
    router_port = _port_of(router_url, 8080)

    stopping = threading.Event()
    started: list[ManagedProcess | EngineNode] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        for what, port in (("engine", engine_port), ("router", router_port)):
            if port_in_use(port):
                raise RuntimeError(f"port {port} for the {what} is already in use: is a stack running?")
        dist = selected_dist()
        _say(f"engine: starting {dist.name} on {engine_url} (log: {state / 'engine.log'})")
        engine = EngineNode(
            home=ensure_engine(dist),
            # One data directory per distribution: OpenSearch cannot read Elasticsearch's.
            state_dir=state / ("engine" if dist.name == DEFAULT_DIST else f"engine-{dist.name}"),
            http_port=engine_port,
            transport_port=engine_port + 100,
            heap=args.engine_heap,
        )
        engine.start(log_path=state / "engine.log")
        started.append(engine)
        engine.wait_ready(timeout=180)
        _say("engine: ready")

        router = router_process(
            state / "router",
            host="127.0.0.1",
            port=router_port,
            log_path=state / "router.log",
            echo=True,
            env=env,
        )
        router.start()
        started.append(router)
        wait_for_port("127.0.0.1", router_port, 60, router.alive)
        _say(f"router: ready on {router_url} (page: http://127.0.0.1:{router_port}/)")

        for name, module, color in (("beater", "beater", 2), ("tailor", "tailor", 3)):
            proc = service_process(name, module, env, state, color)
            proc.start()
            started.append(proc)
            info = proc.wait_ready(timeout=60)
            _say(f"{name}: ready on http://{info['host']}:{info['port']}")

        _say("all up; Ctrl-C stops everything")
        while not stopping.wait(0.5):
            for proc in started:
                if isinstance(proc, ManagedProcess) and not proc.alive():
                    _say(f"{proc.name} exited; stopping the stack")
                    stopping.set()
                    break
        return 0
    except (RuntimeError, TimeoutError) as exc:
        _say(f"failed: {exc}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in reversed(started):
            name = proc.name if isinstance(proc, ManagedProcess) else "engine"
            _say(f"stopping {name}")
            proc.stop()
        _say("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
