"""``filter_path``, as Logstash's ``elasticsearch`` output and libbeat send every bulk.

Their default ``filter_path=errors,items.*.error,items.*.status`` leaves the
items without ``_index`` and ``_id``. estrom asks the engine in full, pairs
and publishes every stored document, and answers the shipper exactly what
the engine answers to the filtered request (compared with the engine's own
answer to the same request, on another index).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import watch
from tests.http_client import engine_request, http
from tests.real_stack import EngineHandle, ServiceHandle

pytestmark = pytest.mark.integration

LOGSTASH = "errors,items.*.error,items.*.status"


def body_for(index: str) -> bytes:
    lines: list[dict[str, Any]] = [
        {"index": {"_index": index}},
        {"kind": "fp", "n": 1},
        {"create": {"_index": index, "_id": "same"}},
        {"kind": "fp", "n": 2},
        {"create": {"_index": index, "_id": "same"}},  # 409
        {"kind": "fp", "n": 3},
        {"index": {"_index": index}},
        {"kind": "fp", "n": "not a number"},  # 400: n is a long by then
    ]
    return ("".join(json.dumps(line) + "\n" for line in lines)).encode()


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """Without what differs between two indices and two runs (the error's reason names the index)."""
    for item in answer.get("items", []):
        for result in item.values():
            if "error" in result:
                result["error"] = {"type": result["error"]["type"]}
            if result.get("_id") not in (None, "same"):
                result["_id"] = "<auto>"  # the engine's own ids differ run to run
    answer.pop("took", None)
    return answer


@pytest.mark.parametrize("spec", [LOGSTASH, "items.*._id,items.*.status", "-took,-items.*._seq_no", "errors"])
def test_a_filtered_bulk_is_answered_as_the_engine_and_every_document_published(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str, spec: str
) -> None:
    mapping = {"mappings": {"properties": {"n": {"type": "long"}}}}
    direct = f"{index}-direct"
    engine_request(engine.url, "PUT", f"/{index}", mapping)
    engine_request(engine.url, "PUT", f"/{direct}", mapping)
    sink = watch(wamp, index)
    headers = {"content-type": "application/x-ndjson", "content-encoding": "gzip"}
    through = http("POST", f"{beater.url}/_bulk?filter_path={spec}", gzip.compress(body_for(index)), headers)
    expected = http(
        "POST", f"{engine.url}/_bulk?filter_path={spec}", gzip.compress(body_for(direct)), headers
    )
    assert through.status == expected.status == 200, through.body
    assert "x-estrom-unpublished" not in through.headers
    want = comparable(json.loads(expected.body.replace(direct.encode(), index.encode())))
    assert comparable(through.json()) == want
    hits = sink.wait_for_count(2)
    assert sorted(h["_source"]["n"] for h in hits) == [1, 2]
