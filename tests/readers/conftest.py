"""Fixtures of tests/readers: stacks whose router, beater and tailor share a readers file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.handles import EngineHandle
from devstack.stack import Stack
from tests.readers.stack import (
    BURST,
    PUBLIC,
    SUBSCRIPTIONS,
    ReadersStack,
    readers_document,
    start_readers_stack,
)


@pytest.fixture(scope="module")
def rstack(stack: Stack, engine: EngineHandle) -> Iterator[ReadersStack]:
    """ops, two, pay and an anonymous reader of public-*; quotas off (the session's)."""
    s = start_readers_stack(stack, "readers-router", readers_document())
    yield s
    s.stop()


@pytest.fixture(scope="module")
def limited(stack: Stack, engine: EngineHandle) -> Iterator[ReadersStack]:
    """Small quotas, to reach them."""
    s = start_readers_stack(
        stack,
        "readers-quota",
        {"readers": readers_document()["readers"], "anonymous": {"targets": ["flood-*", PUBLIC]}},
        ESTROM_QUOTA_SUBSCRIPTIONS=str(SUBSCRIPTIONS),
        ESTROM_QUOTA_REGISTRATIONS_BURST=str(BURST),
        ESTROM_QUOTA_REGISTRATIONS_PER_SECOND="0.01",
        ESTROM_QUOTA_TAILS="2",
    )
    yield s
    s.stop()
