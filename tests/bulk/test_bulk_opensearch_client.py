"""The engine's bulk API through the beater, driven by opensearch-py: the same case as elasticsearch-py's.

``helpers.streaming_bulk`` of opensearch-py writes mixed actions once
through estrom and once straight to OpenSearch: the same answers item for
item (a 409, a mapping conflict and a 404 passed back unchanged), the same
stored documents, and what ``index``/``create`` stored reaches a subscriber
with the engine's ``_index``/``_id`` (``tests/bulk/streaming_bulk_case.py``).
It runs where the engine is OpenSearch, and skips on Elasticsearch.
"""

from __future__ import annotations

import pytest
from opensearchpy import OpenSearch, helpers

from devstack.wamp_client import WampClient
from tests.bulk.streaming_bulk_case import check_streaming_bulk, engine_family
from tests.real_stack import EngineHandle, ServiceHandle

pytestmark = pytest.mark.integration


def test_opensearch_py_streaming_bulk_answers_and_stores_as_the_engine_does(
    beater: ServiceHandle, engine: EngineHandle, wamp: WampClient, index: str
) -> None:
    if engine_family(engine) != "opensearch":
        pytest.skip("opensearch-py's case runs against OpenSearch (ESTROM_ENGINE_DIST=opensearch-2.19.6)")
    check_streaming_bulk(
        lambda url: OpenSearch([url], timeout=120),  # the client's 10 s: less than a busy engine's pace
        helpers.streaming_bulk,
        beater,
        engine,
        wamp,
        index,
    )
