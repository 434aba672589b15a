"""Data streams for the tests that need one: only some engines have them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http_client import http


def put_data_stream_template(
    engine_url: str, name: str, pattern: str, settings: dict[str, Any] | None = None
) -> None:
    """An index template making every index named like ``pattern`` a data stream (its backing
    indices with ``settings``); the test is skipped on an engine without data streams
    (Elasticsearch 7.17 OSS: an x-pack feature)."""
    template: dict[str, Any] = {"index_patterns": [pattern], "data_stream": {}, "priority": 500}
    if settings:
        template["template"] = {"settings": settings}
    resp = http(
        "PUT",
        f"{engine_url}/_index_template/{name}",
        json.dumps(template),
        {"content-type": "application/json"},
    )
    if resp.status == 400 and b"data_stream" in resp.body:
        pytest.skip("this engine has no data streams (Elasticsearch 7.17 OSS: they are an x-pack feature)")
    assert resp.status == 200, resp.body
