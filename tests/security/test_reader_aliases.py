"""A reader's target is judged by what it reaches: aliases to indices outside it are refused.

A writer's template (or an admin) may put an alias named like the
anonymous reader's targets (``public-*``) on an index outside them
(``payroll-*``). Registering on that alias, or on a pattern its name
matches, would deliver the payroll documents: it is refused over WAMP, as
``com.estrom.error.not_authorized``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from autobahn.wamp.exception import ApplicationError

from devstack.handles import EngineHandle
from devstack.stack import Stack
from tests.http_client import engine_request
from tests.readers.stack import ReadersStack, start_readers_stack

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PAYROLL = f"payroll-{RUN}"
LEAK = f"public-leak-{RUN}"
FINE = f"public-fine-{RUN}"


@pytest.fixture(scope="module")
def public_only(stack: Stack, engine: EngineHandle) -> Iterator[ReadersStack]:
    s = start_readers_stack(stack, "alias-readers", {"anonymous": {"targets": ["public-*"]}})
    engine_request(engine.url, "PUT", f"/{PAYROLL}", {"aliases": {LEAK: {}}})
    engine_request(engine.url, "PUT", f"/{FINE}-1", {"aliases": {FINE: {}}})
    yield s
    s.stop()
    # The alias would refuse later tests' public-* too: the engine is the session's.
    engine_request(engine.url, "DELETE", f"/{PAYROLL},{FINE}-1")


@pytest.mark.parametrize("target", [LEAK, f"public-leak-{RUN[:4]}*", "public-*"])
def test_an_alias_leading_outside_the_readers_targets_is_refused(
    public_only: ReadersStack, target: str
) -> None:
    client = public_only.client(None)
    try:
        with pytest.raises(ApplicationError) as refused:
            client.call("com.estrom.register_query", target, "*")
        assert refused.value.error == "com.estrom.error.not_authorized"
    finally:
        client.close()


def test_an_alias_inside_the_readers_targets_is_fine(public_only: ReadersStack) -> None:
    client = public_only.client(None)
    try:
        sid = client.call("com.estrom.register_query", FINE, "*")
        assert len(sid) == 16
    finally:
        client.close()
