"""Fixtures that start the real parts: Elasticsearch, crossbar, beater processes.

Everything listens on free loopback ports and says when it is ready (engine:
cluster health; router: its port; beater: a JSON ready line); nothing waits
on a sleep. One engine and one router serve the whole session; tests isolate
themselves by index name. Set ESTROM_TEST_ENGINE_URL to reuse a running
engine while iterating.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.engine import EngineNode, ensure_engine
from devstack.processes import ManagedProcess, free_port, wait_for_port
from devstack.router import REPO, generate_secrets, router_process
from tests.wamp_client import WampClient

ARTIFACTS = REPO / "test-artifacts"

#: The router principals' secrets of this test session: every router gets all
#: of them, beaters and tailors their own (see ``service_env``), and the
#: ``admin_wamp`` client the admin one, for the meta API.
ROUTER_SECRETS = generate_secrets()


#: Readers' quotas (issue 15) off by default: every test's anonymous session comes from
#: 127.0.0.1, one quota key for the whole suite. tests/readers sets them where it tests them.
UNLIMITED_QUOTAS = {
    "ESTROM_QUOTA_SUBSCRIPTIONS": "0",
    "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": "0",
    "ESTROM_QUOTA_TAILS": "0",
    "ESTROM_QUOTA_TAILS_TOTAL": "0",
}


def router_env(**overrides: str) -> dict[str, str]:
    """The router's environment: ours without a developer's ESTROM_*, plus the session's secrets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTROM_")}
    env.update(ROUTER_SECRETS)
    env.update(UNLIMITED_QUOTAS)
    env.update(overrides)
    return env


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Under /tmp, not the checkout: the unprivileged engine user must reach it.
    path = Path(tempfile.mkdtemp(prefix="estrom-test-"))
    path.chmod(0o755)
    yield path
    keep = ARTIFACTS / "logs"
    keep.mkdir(parents=True, exist_ok=True)
    for log in path.rglob("*.log"):
        if "engine" in log.parts and log.name != "engine.log":
            continue
        shutil.copy2(log, keep / f"{log.parent.name}-{log.name}")
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class EngineHandle:
    url: str
    node: EngineNode | None


@pytest.fixture(scope="session")
def engine(workdir: Path) -> Iterator[EngineHandle]:
    external = os.environ.get("ESTROM_TEST_ENGINE_URL")
    if external:
        yield EngineHandle(external.rstrip("/"), None)
        return
    port = free_port()
    node = EngineNode(
        home=ensure_engine(),
        state_dir=workdir / "engine",
        http_port=port,
        transport_port=free_port(),
        heap=os.environ.get("ESTROM_TEST_ENGINE_HEAP", "512m"),
    )
    node.start(log_path=workdir / "engine.log")
    try:
        node.wait_ready(timeout=180)
        yield EngineHandle(node.url, node)
    finally:
        node.stop()


@dataclass
class RouterHandle:
    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        self.process.stop()

    def start(self) -> None:
        self.process.start()
        wait_for_port("127.0.0.1", self.port, 60, self.process.alive)


def start_router(workdir: Path, name: str, **env: str) -> RouterHandle:
    """A router on a free port; ``env`` overrides its settings (ESTROM_ROUTER_ANONYMOUS=0, ...)."""
    port = free_port()
    proc = router_process(
        workdir / name,
        host="127.0.0.1",
        port=port,
        log_path=workdir / name / "router.log",
        env=router_env(**env),
    )
    handle = RouterHandle(port, proc)
    handle.start()
    return handle


@pytest.fixture(scope="session")
def router(workdir: Path) -> Iterator[RouterHandle]:
    handle = start_router(workdir, "router")
    yield handle
    handle.stop()


@dataclass
class ServiceHandle:
    process: ManagedProcess
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> int | None:
        return self.process.stop()


def service_env(engine_url: str, router_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESTROM_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "ESTROM_ENGINE_URL": engine_url,
            "ESTROM_ROUTER_URL": router_url,
            "ESTROM_BEATER_LISTEN": "tcp:0:interface=127.0.0.1",
            "ESTROM_TAILOR_LISTEN": "tcp:0:interface=127.0.0.1",
            "ESTROM_LOG_LEVEL": "debug",
            # A test machine may be busy (2 cores, engine, router, browsers): a slow
            # engine answer there is not the outage the 5 s default is meant for.
            "ESTROM_ENGINE_TIMEOUT": "20",
            "ESTROM_BEATER_SECRET": ROUTER_SECRETS["ESTROM_BEATER_SECRET"],
            "ESTROM_TAILOR_SECRET": ROUTER_SECRETS["ESTROM_TAILOR_SECRET"],
            **UNLIMITED_QUOTAS,
        }
    )
    env.update(overrides)
    return env


def start_service(workdir: Path, module: str, env: dict[str, str], wait: bool = True) -> ServiceHandle:
    name = f"{module}-{uuid.uuid4().hex[:6]}"
    proc = ManagedProcess(
        name, [sys.executable, "-m", module], env=env, cwd=REPO, log_path=workdir / f"{name}.log"
    )
    proc.start()
    if not wait:
        return ServiceHandle(proc, "", 0)
    try:
        info = proc.wait_ready(timeout=60)
    except Exception:
        proc.stop()
        raise
    return ServiceHandle(proc, info["host"], info["port"])


StartService = Callable[..., ServiceHandle]


def _service_factory(
    module: str, workdir: Path, engine: EngineHandle, router: RouterHandle
) -> Iterator[StartService]:
    """Start ``module`` processes with their own settings; stop them all afterwards."""
    started: list[ServiceHandle] = []

    def start(engine_url: str | None = None, router_url: str | None = None, **env: str) -> ServiceHandle:
        handle = start_service(
            workdir, module, service_env(engine_url or engine.url, router_url or router.url, **env)
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()


@pytest.fixture
def start_beater(workdir: Path, engine: EngineHandle, router: RouterHandle) -> Iterator[StartService]:
    """Factory for beaters with their own settings; all stopped after the test."""
    yield from _service_factory("beater", workdir, engine, router)


@pytest.fixture
def start_tailor(workdir: Path, engine: EngineHandle, router: RouterHandle) -> Iterator[StartService]:
    """Factory for tailors with their own settings (small pending bound, another router, ...)."""
    yield from _service_factory("tailor", workdir, engine, router)


@pytest.fixture(scope="session")
def tailor(
    workdir: Path, engine: EngineHandle, router: RouterHandle, beater: ServiceHandle
) -> Iterator[ServiceHandle]:
    """One tailor with default settings for the whole session (tailor and CLI tests)."""
    handle = start_service(workdir, "tailor", service_env(engine.url, router.url))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def beater(workdir: Path, engine: EngineHandle, router: RouterHandle) -> Iterator[ServiceHandle]:
    handle = start_service(workdir, "beater", service_env(engine.url, router.url))
    yield handle
    handle.stop()


@pytest.fixture
def wamp(router: RouterHandle, beater: ServiceHandle) -> Iterator[WampClient]:
    """An anonymous session, allowed what a browser is: register/describe queries, subscribe.

    Depends on the shared beater: it serves the com.estrom.* procedures.
    """
    client = WampClient(router.url)
    yield client
    client.close()


def admin_client(url: str) -> WampClient:
    return WampClient(url, authid="admin", secret=ROUTER_SECRETS["ESTROM_ADMIN_SECRET"])


@pytest.fixture
def admin_wamp(router: RouterHandle) -> Iterator[WampClient]:
    """The admin principal: everything, including the router's meta API (wamp.subscription.*)."""
    client = admin_client(router.url)
    yield client
    client.close()


@pytest.fixture
def index() -> str:
    """A fresh document index name per test, so tests never see each other's queries."""
    return f"t-{uuid.uuid4().hex[:12]}"
