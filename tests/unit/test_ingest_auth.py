"""The ingest token check: scheme, whitespace, any header bytes."""

from __future__ import annotations

import pytest

from beater.auth import bearer_matches


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (b"Bearer s3cret", True),
        (b"bearer s3cret", True),
        (b"Bearer  s3cret ", True),
        (None, False),
        (b"", False),
        (b"Bearer", False),
        (b"Bearer wrong", False),
        (b"Basic s3cret", False),
        (b"Bearer s3cr\xe9t", False),  # not ASCII: a wrong token, never an exception
        (b"Bearer s3cret\xff", False),
    ],
)
def test_bearer_matches(header: bytes | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret") is ok
