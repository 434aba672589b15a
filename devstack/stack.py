"""A stack you enter and leave: engine, router, beaters and tailors, each ready when it says so.

The stack command (``devstack/foreground.py``), the tests' fixtures and the
benchmarks all start processes through ``Stack``::

    with Stack(workdir) as stack:
        stack.up(tailors=1)
        client = stack.client()          # an anonymous WAMP session, as a browser
        ...                              # stack.beater.url, stack.tailor.url, stack.engine.url

Leaving the block stops everything it started, last started first. Every
process says when it is ready (engine: cluster health; router: its port;
beater and tailor: a JSON ready line); nothing waits on a sleep. Children get
no ``ESTROM_*`` setting of the caller unless it passes ``env`` (the stack
command does), fresh router secrets unless it passes ``secrets``, and the
engine of ``ESTROM_ENGINE_DIST`` (see ``devstack/settings.py``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack.engine import EngineNode
from devstack.handles import EngineHandle, RouterHandle, ServiceHandle
from devstack.processes import ManagedProcess, free_port
from devstack.router import REPO, generate_secrets, router_process
from devstack.settings import engine_dist, engine_home, router_env, secret_var, service_env, without_estrom
from devstack.wamp_client import WampClient

#: Console colours of the foreground stack's log prefixes.
_COLORS = {"router": 1, "beater": 2, "tailor": 3}


def service_process(name: str, module: str, env: dict[str, str], logs: Path, color: int) -> ManagedProcess:
    """``python -m <module>`` as a child that reports ready, logging to ``logs/<name>.log``."""
    return ManagedProcess(
        name,
        [sys.executable, "-m", module],
        env=env,
        cwd=REPO,
        log_path=logs / f"{name}.log",
        echo=False,
        color=color,
    )


class Stack:
    """Processes started in ``workdir``; stopped, in reverse, when the ``with`` block ends."""

    def __init__(
        self,
        workdir: Path,
        *,
        secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        engine_urls: Sequence[str] = (),
        engine_dist_name: str | None = None,
        engine_heap: str = "512m",
        any_port: bool = True,
        echo: bool = False,
        router_workers: int = 1,
    ) -> None:
        """
        ``secrets``: the router principals' (default: fresh ones); ``env``: every child's base
        environment (default: ours without ``ESTROM_*``); ``settings``: ``ESTROM_*`` of every beater
        and tailor; ``engine_urls``: engines running elsewhere, used instead of starting one;
        ``any_port``: services listen on free ports (else on their configured ones); ``echo``:
        children's lines go to our stdout too, prefixed with their names; ``router_workers``: the
        router nodes of each router started (K, ``ESTROM_ROUTER_WORKERS``: common/router_tier.py).
        """
        self.workdir = workdir
        self.secrets = dict(generate_secrets() if secrets is None else secrets)
        self.env = without_estrom(os.environ) if env is None else dict(env)
        self.settings = dict(settings or {})
        self.engine_urls = [u.rstrip("/") for u in engine_urls]
        self.engine_dist = engine_dist_name or engine_dist()
        self.engine_heap = engine_heap
        self.any_port = any_port
        self.echo = echo
        self.router_workers = router_workers
        self.engines: dict[str, EngineHandle] = {}
        self.routers: dict[str, RouterHandle] = {}
        self.beaters: list[ServiceHandle] = []
        self.tailors: list[ServiceHandle] = []
        self._counts: dict[str, int] = {}
        self._cleanup = contextlib.ExitStack()

    # -- entering and leaving ------------------------------------------------

    def __enter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop everything started, last started first (services before router before engine)."""
        self._cleanup.close()

    def _on_close(self, stop: Any) -> None:
        def quietly() -> None:
            with contextlib.suppress(Exception):
                stop()

        self._cleanup.callback(quietly)

    def _name(self, base: str) -> str:
        """``base`` the first time, then ``base-2``, ``base-3``: one log file each."""
        n = self._counts[base] = self._counts.get(base, 0) + 1
        return base if n == 1 else f"{base}-{n}"

    # -- the parts -----------------------------------------------------------

    @property
    def engine(self) -> EngineHandle:
        """The stack's engine (``start_engine()`` with the default name)."""
        if "engine" not in self.engines:
            raise RuntimeError("no engine yet: call start_engine() or up() first")
        return self.engines["engine"]

    @property
    def router(self) -> RouterHandle:
        if "router" not in self.routers:
            raise RuntimeError("no router yet: call start_router() or up() first")
        return self.routers["router"]

    @property
    def beater(self) -> ServiceHandle:
        return self.beaters[0]

    @property
    def tailor(self) -> ServiceHandle:
        return self.tailors[0]

    def start_engine(
        self,
        name: str = "engine",
        *,
        http_port: int = 0,
        transport_port: int = 0,
        heap: str | None = None,
        wait: bool = True,
    ) -> EngineHandle:
        """An engine node with its data in ``workdir/<name>/<dist>``; the default one may be ``engine_urls``.

        Each distribution keeps its own data: an index one engine wrote may not
        open in another (OpenSearch 3 cannot read Elasticsearch 7's), so
        switching ``ESTROM_ENGINE_DIST`` starts that engine afresh instead of failing.

        ``wait=False`` returns once it is launched (``node.wait_ready`` later), so a
        router can start meanwhile.
        """
        if name == "engine" and self.engine_urls:
            handle = EngineHandle(list(self.engine_urls))
            self.engines[name] = handle
            return handle
        node = EngineNode(
            home=engine_home(self.engine_dist),
            state_dir=self.workdir / name / self.engine_dist,
            http_port=http_port or free_port(),
            transport_port=transport_port or free_port(),
            heap=heap or self.engine_heap,
        )
        node.start(log_path=self.workdir / f"{name}.log")
        handle = EngineHandle([node.url], [node])
        self._on_close(handle.stop)
        self.engines[name] = handle
        if wait:
            node.wait_ready(timeout=300)  # a loaded 2-core machine: OpenSearch 3 took 4 min once
        return handle

    def start_router(
        self,
        name: str = "router",
        *,
        port: int = 0,
        workers: int | None = None,
        partition_port: int = 0,
        **settings: str,
    ) -> RouterHandle:
        """A router on ``port`` (default: a free one) with every secret: its front node there, and
        ``workers`` - 1 (default: the stack's ``router_workers``) partition nodes, one process each,
        on ``partition_port``, the next port, ... (default: free ones). ``settings`` override its
        ``ESTROM_ROUTER_*`` (``ESTROM_ROUTER_ANONYMOUS="0"``, ...)."""
        front = self._start_router_node(name, port, 0, settings)
        for partition in range(1, workers or self.router_workers):
            node_port = partition_port + partition - 1 if partition_port else 0
            front.partitions.append(
                self._start_router_node(f"{name}-{partition}", node_port, partition, settings)
            )
        self.routers.setdefault(name, front)
        return front

    def _start_router_node(
        self, name: str, port: int, partition: int, settings: dict[str, str]
    ) -> RouterHandle:
        """One router node. A free port is only free until someone binds it: when another process
        (a parallel test run's engine, say) took it first, the node is started again on a new one."""
        for attempt in range(1 if port else 3):
            chosen = port or free_port()
            cbdir = self.workdir / name
            proc = router_process(
                cbdir,
                host="127.0.0.1",
                port=chosen,
                log_path=cbdir / "router.log",
                echo=self.echo,
                env=router_env(self.env, self.secrets, **settings),
                partition=partition,
            )
            handle = RouterHandle(proc, chosen, partition=partition)
            self._on_close(handle.stop)
            try:
                handle.start()
            except RuntimeError:
                if port or attempt == 2 or not handle.lost_its_port():
                    raise
                handle.stop()
                continue
            break
        return handle

    def service_env(
        self, role: str, *, engine_url: str | None = None, router_url: str | None = None, **settings: str
    ) -> dict[str, str]:
        """The environment a ``role`` process of this stack gets (its own secret, this stack's
        engine and router unless others are named), with ``settings`` last."""
        return service_env(
            role,
            self.env,
            self.secrets,
            engine_urls=[engine_url] if engine_url else self.engine.urls,
            router_url=router_url or self.router.service_url,
            any_port=self.any_port,
            **(self.settings | settings),
        )

    def start_service(
        self,
        role: str,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
        engine_url: str | None = None,
        router_url: str | None = None,
        **settings: str,
    ) -> ServiceHandle:
        """``python -m <role>`` (beater, tailor) with ``env`` or this stack's ``service_env``;
        ready once it prints its ready line (``wait=False``: at once, address unknown)."""
        if env is None:
            env = self.service_env(role, engine_url=engine_url, router_url=router_url, **settings)
        proc = service_process(self._name(role), role, env, self.workdir, _COLORS.get(role, 0))
        proc.echo = self.echo
        proc.start()
        handle = ServiceHandle(proc, "", 0)
        self._on_close(handle.stop)
        if not wait:
            return handle
        try:
            info = proc.wait_ready(timeout=60)
        except Exception:
            proc.stop()
            raise
        handle.host, handle.port = info["host"], int(info["port"])
        (self.beaters if role == "beater" else self.tailors).append(handle)
        return handle

    def start_beater(self, **kwargs: Any) -> ServiceHandle:
        return self.start_service("beater", **kwargs)

    def start_tailor(self, **kwargs: Any) -> ServiceHandle:
        return self.start_service("tailor", **kwargs)

    def up(
        self,
        *,
        beaters: int = 1,
        tailors: int = 0,
        beater_settings: Mapping[str, str] | None = None,
        tailor_settings: Mapping[str, str] | None = None,
        engine_port: int = 0,
        router_port: int = 0,
    ) -> Stack:
        """The whole stack: the engine boots while the router starts, then beaters, then tailors."""
        engine = self.start_engine(
            http_port=engine_port, transport_port=engine_port + 100 if engine_port else 0, wait=False
        )
        self.start_router(port=router_port)
        if engine.node is not None:
            engine.node.wait_ready(timeout=300)
        for _ in range(beaters):
            self.start_beater(**(beater_settings or {}))
        for _ in range(tailors):
            self.start_tailor(**(tailor_settings or {}))
        return self

    # -- talking to it -------------------------------------------------------

    def client(
        self, authid: str | None = None, *, router_url: str | None = None, **kwargs: Any
    ) -> WampClient:
        """A joined WAMP session on this stack's router: anonymous (a browser's rights), or as the
        principal ``authid`` (beater, tailor, admin) with its secret. The caller closes it."""
        secret = self.secrets[secret_var(authid)] if authid else None
        return WampClient(router_url or self.router.url, authid=authid, secret=secret, **kwargs)
