"""A condition that clears (common/errors.py), answered in one place: ``Routes``, 503 with Retry-After.

Every other answer keeps its shape. The routing resource alone, in treq's StubTreq.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from treq.testing import StubTreq

from common import contract
from common.config import Settings
from common.engine import EngineUnavailable
from common.errors import DEFAULT_RETRY_AFTER, RetryLater, ShuttingDown
from common.http import HTTPError, Routes
from common.wamp import RouterUnavailable
from tests.memory.site_agent import result_of


def _answer(routes: Routes) -> tuple[int, dict[str, Any], list[str] | None]:
    """GET /x of ``routes``, in treq's StubTreq: status, JSON body, Retry-After."""
    stub = StubTreq(routes)
    response = result_of(stub.get("http://service/x"))
    body = json.loads(result_of(stub.content(response)))
    return response.code, body, response.headers.getRawHeaders("retry-after")


@pytest.mark.parametrize(
    ("raised", "reason", "retry_after"),
    [
        (RetryLater("engine busy"), "engine busy", "9"),
        (RetryLater("soon", retry_after=1), "soon", "1"),
        (
            EngineUnavailable("engine unreachable: ConnectionError"),
            "engine unreachable: ConnectionError",
            "9",
        ),
        (RouterUnavailable("not connected to the router"), "not connected to the router", "9"),
        (
            ShuttingDown("beater"),
            "the beater is shutting down; retry (another beater, or this one restarted)",
            "9",
        ),
    ],
)
def test_a_condition_that_clears_is_a_503_with_retry_after(
    raised: RetryLater, reason: str, retry_after: str
) -> None:
    async def handler(request: Any, rest: list[str]) -> None:
        raise raised

    status, body, header = _answer(Routes({("GET", ("x",)): handler}, retry_after=9))
    assert (status, body) == (503, {"error": "unavailable", "reason": reason})
    assert header == [retry_after]


def test_the_default_retry_after_is_the_settings_default() -> None:
    async def handler(request: Any, rest: list[str]) -> None:
        raise RetryLater("later")

    assert Settings.from_env({}).retry_after == DEFAULT_RETRY_AFTER
    assert _answer(Routes({("GET", ("x",)): handler}))[2] == [str(DEFAULT_RETRY_AFTER)]


def test_other_answers_keep_their_shape() -> None:
    async def refused(request: Any, rest: list[str]) -> None:
        raise HTTPError.of(contract.INVALID_INDEX, "bad name", extra=1)

    assert _answer(Routes({("GET", ("x",)): refused}))[:2] == (
        400,
        {"error": "invalid_index", "reason": "bad name", "extra": 1},
    )
    assert _answer(Routes({}))[:2] == (404, {"error": "not_found", "reason": "no such endpoint"})
