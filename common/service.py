"""Running a service process: settings, logging, reactor, clean exit codes.

Shared by ``python -m beater`` and ``python -m tailor``: a bad setting or an
unsupported engine ends the process at start-up with a message and exit
code 2, never later.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import txaio
from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

from common.config import Settings
from common.engine import Engine, EngineUnavailable, UnsupportedEngine
from common.environment import ConfigError
from common.logs import start_logging
from common.router_tier import RouterTier

log = Logger()


class Service(Protocol):
    async def start(self) -> None: ...


async def listen_and_join(
    name: str,
    reactor: Any,
    listen: str,
    site: Site,
    wamp: RouterTier,
    engine: Engine,
    drain: Callable[[IListeningPort], Awaitable[None]] | None = None,
) -> IListeningPort:
    """Listen, join every router node and check the engine; print the ready line once joined.

    The ready line (``{"event": "ready", ...}`` on stdout) is what the stack
    command and the test fixtures wait for: the port is open and the WAMP
    session is there. An unreachable engine is only a warning: it may come
    later, and requests answer 503 meanwhile.

    On SIGTERM, ``drain(port)`` runs first (stop listening, finish what is
    in flight), and only then does the process leave the router: the last
    publishes of the requests it finishes still need the session.
    """
    port = await serverFromString(reactor, listen).listen(site)
    address = port.getHost()
    reactor.addSystemEventTrigger(
        "before", "shutdown", lambda: ensureDeferred(_shut_down(wamp, reactor, port, drain))
    )
    joined = wamp.next_join()
    wamp.start(reactor)
    try:
        server = await engine.check()
        log.info(
            "engine.ok",
            engine=server.family,
            version=".".join(map(str, server.version)),
            supported=True,
            tested=server.tested,
            nodes=len(engine.urls),
        )
    except EngineUnavailable as exc:
        log.warn("engine.unreachable", error=str(exc))
    await joined
    log.info(f"{name}.listening", host=address.host, port=address.port)
    ready = {"event": "ready", "service": name, "host": address.host, "port": address.port}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    return port


async def _shut_down(
    wamp: RouterTier,
    reactor: Any,
    port: IListeningPort,
    drain: Callable[[IListeningPort], Awaitable[None]] | None,
) -> None:
    if drain is not None:
        try:
            await drain(port)
        except Exception:
            log.failure("shutdown.drain_failed")
    # Say goodbye to the router instead of dropping the connection.
    d: Deferred[None] = ensureDeferred(wamp.stop())
    d.addTimeout(2.0, reactor)
    d.addErrback(lambda _failure: None)
    await d


def run_service(name: str, build: Callable[[Settings, Any], Service]) -> None:
    """Build the service from the environment and run it until SIGTERM / Ctrl-C."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    start_logging(name, settings.log_level, settings.log_format)
    txaio.use_twisted()
    # Set on the module by txaio.use_twisted() at run time: not in txaio's annotations.
    txaio.set_global_log_level("debug" if settings.log_level == "debug" else "warn")  # type: ignore[attr-defined]

    async def run(reactor: Any) -> None:
        service = build(settings, reactor)
        try:
            await service.start()
        except UnsupportedEngine as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        await Deferred()  # run until the reactor stops

    task.react(lambda reactor: ensureDeferred(run(reactor)))
