"""Fixtures that start the real parts (Elasticsearch, crossbar, beaters, tailors), and the test tiers.

Everything runs through one ``devstack.stack.Stack`` per session: free
loopback ports, ready when each process says so, never after a sleep. One
engine and one router serve the whole session; tests isolate themselves by
index name. Set ESTROM_TEST_ENGINE_URL to reuse a running engine while
iterating. Names tests import live in helper modules (``tests/real_stack.py``,
``tests/waiting.py``, ...), not here.

Tiers: every test is marked by its directory (``TIERS``), so ``-m unit``,
``-m memory``, ``-m "not browser"`` choose by cost; see docs/development.md ("Tests").
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.handles import EngineHandle, RouterHandle, ServiceHandle
from devstack.settings import UNLIMITED_QUOTAS, without_estrom
from devstack.stack import Stack
from devstack.wamp_client import WampClient
from tests.real_stack import ARTIFACTS, SECRETS, TEST_SETTINGS, admin_client, service_fixture
from tests.service_logs import excerpt

#: The browser fixtures, shared by the browser, deploy and readers tiers.
pytest_plugins = ["tests.browser_page"]

#: Directory under tests/ -> tier marker (pyproject.toml's markers describe each).
TIERS = {
    "unit": "unit",
    "memory": "memory",
    "integration": "integration",
    "tailor": "integration",
    "bulk": "integration",
    "shippers": "integration",
    "cli": "integration",
    "security": "integration",
    "readers": "integration",
    "faults": "faults",
    "hostile": "faults",
    "browser": "browser",
    "deploy": "deploy",
    "cluster": "cluster",
}
_TESTS = Path(__file__).resolve().parent
#: The session's working directories, whose service logs a failed test's report quotes.
_WORKDIRS: list[Path] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.path)).resolve()
        if not path.is_relative_to(_TESTS):
            continue  # bench/'s own checks: pure, no tier
        parts = path.relative_to(_TESTS).parts
        tier = TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is not None:
            item.add_marker(tier)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report quotes what the services logged while it ran."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when == "call" and report.failed and _WORKDIRS:
        text = excerpt(_WORKDIRS, since=call.start - 1)
        if text:
            report.sections.append(("service logs while the test ran", text))


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Under /tmp, not the checkout: the unprivileged engine user must reach it.
    path = Path(tempfile.mkdtemp(prefix="estrom-test-"))
    path.chmod(0o755)
    _WORKDIRS.append(path)
    yield path
    _WORKDIRS.remove(path)
    keep = ARTIFACTS / "logs"
    keep.mkdir(parents=True, exist_ok=True)
    for log in path.rglob("*.log"):
        if "engine" in log.parts and log.name != "engine.log":
            continue
        shutil.copy2(log, keep / f"{log.parent.name}-{log.name}")
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(workdir: Path) -> Iterator[Stack]:
    """The session's stack; its parts start when a test first asks for them."""
    external = os.environ.get("ESTROM_TEST_ENGINE_URL", "")
    with Stack(
        workdir,
        env=without_estrom(os.environ) | UNLIMITED_QUOTAS,
        secrets=SECRETS,
        settings=TEST_SETTINGS,
        engine_urls=[u for u in external.split(",") if u.strip()],
        engine_heap=os.environ.get("ESTROM_TEST_ENGINE_HEAP", "512m"),
        # The router tier's nodes (common/router_tier.py): scripts/test runs a tier with 2.
        router_workers=int(os.environ.get("ESTROM_TEST_ROUTER_WORKERS", "1")),
    ) as s:
        yield s


@pytest.fixture(scope="session")
def engine(stack: Stack) -> EngineHandle:
    return stack.start_engine()


@pytest.fixture(scope="session")
def router(stack: Stack) -> RouterHandle:
    return stack.start_router()


@pytest.fixture(scope="session")
def beater(stack: Stack, engine: EngineHandle, router: RouterHandle) -> ServiceHandle:
    return stack.start_beater()


@pytest.fixture(scope="session")
def tailor(stack: Stack, engine: EngineHandle, router: RouterHandle, beater: ServiceHandle) -> ServiceHandle:
    """One tailor with default settings for the whole session (tailor and CLI tests)."""
    return stack.start_tailor()


start_beater = service_fixture(
    "beater", "engine", "router", "Factory for beaters with their own settings; all stopped after the test."
)
start_tailor = service_fixture(
    "tailor",
    "engine",
    "router",
    "Factory for tailors with their own settings (small pending bound, another router, ...).",
)


@pytest.fixture
def wamp(router: RouterHandle, beater: ServiceHandle) -> Iterator[WampClient]:
    """An anonymous session, allowed what a browser is: register/describe queries, subscribe.

    Depends on the shared beater: it serves the com.estrom.* procedures.
    """
    client = WampClient(router.url)
    yield client
    client.close()


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
