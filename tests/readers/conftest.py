"""Fixtures of tests/readers: stacks whose router, beater and tailor share a readers file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EngineHandle
from tests.readers.stack import (
    BURST,
    PUBLIC,
    SUBSCRIPTIONS,
    ReadersStack,
    readers_document,
    start_readers_stack,
)


@pytest.fixture(scope="module")
def stack(workdir: Path, engine: EngineHandle) -> Iterator[ReadersStack]:
    """ops, two, pay and an anonymous reader of public-*, with default quotas."""
    s = start_readers_stack(workdir, engine, "readers-router", readers_document())
    yield s
    s.stop()


@pytest.fixture(scope="module")
def limited(workdir: Path, engine: EngineHandle) -> Iterator[ReadersStack]:
    s = start_readers_stack(
        workdir,
        engine,
        "readers-quota",
        {"readers": readers_document()["readers"], "anonymous": {"targets": ["flood-*", PUBLIC]}},
        ESTROM_QUOTA_SUBSCRIPTIONS=str(SUBSCRIPTIONS),
        ESTROM_QUOTA_REGISTRATIONS_BURST=str(BURST),
        ESTROM_QUOTA_REGISTRATIONS_PER_SECOND="0.01",
        ESTROM_QUOTA_TAILS="2",
    )
    yield s
    s.stop()
