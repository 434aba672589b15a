"""Read targets reached through aliases and data streams, learned by the beater's sweeps.

An alias or a data stream may be added or removed while a tail runs: the
beater learns of it within a sweep (made fast here), and its hits carry the
concrete index the document went to.
"""

from __future__ import annotations

import pytest

from devstack.wamp_client import WampClient
from tests.data_streams import put_data_stream_template
from tests.http_client import engine_request, http
from tests.integration.read_target_checks import FAST_SWEEPS, published, wait_for_sweeps
from tests.real_stack import EngineHandle, StartService

pytestmark = pytest.mark.integration


def test_an_alias_added_and_removed_while_a_tail_runs(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete, alias = f"{index}-000001", f"{index}-current"
    engine_request(engine.url, "PUT", f"/{concrete}")
    sid = wamp.call("com.estrom.register_query", alias, "kind:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    assert published(beater, concrete, {"kind": "x", "n": 0}) == 0

    engine_request(
        engine.url, "POST", "/_aliases", {"actions": [{"add": {"index": concrete, "alias": alias}}]}
    )
    wait_for_sweeps(beater)  # an alias change is seen within one sweep
    assert published(beater, concrete, {"kind": "x", "n": 1, "marker": "aliased"}) == 1
    assert sink.wait_for_marker("aliased") == [
        {"_index": concrete, "_source": {"kind": "x", "n": 1, "marker": "aliased"}}
    ]

    engine_request(
        engine.url, "POST", "/_aliases", {"actions": [{"remove": {"index": concrete, "alias": alias}}]}
    )
    wait_for_sweeps(beater)
    assert published(beater, concrete, {"kind": "x", "n": 2}) == 0


def test_a_pattern_matching_an_alias_covers_the_indices_behind_it(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete = f"other-{index}"
    engine_request(engine.url, "PUT", f"/{concrete}", {"aliases": {f"{index}-alias": {}}})
    sid = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    wamp.subscribe(f"docs-for-{sid}")
    wait_for_sweeps(beater)
    assert published(beater, concrete, {"kind": "x"}) == 1


def test_hits_ingested_through_an_alias_carry_the_concrete_index(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    beater = start_beater(**FAST_SWEEPS)
    concrete, alias = f"{index}-000001", f"{index}-write"
    engine_request(engine.url, "PUT", f"/{concrete}", {"aliases": {alias: {"is_write_index": True}}})
    on_pattern = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    on_concrete = wamp.call("com.estrom.register_query", concrete, "kind:x")
    sinks = [wamp.subscribe(f"docs-for-{sid}") for sid in (on_pattern, on_concrete)]
    wait_for_sweeps(beater)  # the alias is known within one sweep
    # As a shipper writes it: through the alias, which the engine would resolve to its write index.
    assert published(beater, alias, {"kind": "x", "marker": "w"}) == 2
    for sink in sinks:
        assert sink.wait_for_marker("w") == [{"_index": concrete, "_source": {"kind": "x", "marker": "w"}}]


def test_a_data_stream_written_through_its_name(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    put_data_stream_template(engine.url, index, f"{index}-ds-*")
    beater = start_beater(**FAST_SWEEPS)
    stream = f"{index}-ds-nginx"
    try:
        engine_request(
            engine.url, "POST", f"/{stream}/_doc?refresh=true", {"@timestamp": "2026-12-01T00:00:00Z"}
        )
        sid = wamp.call("com.estrom.register_query", f"{index}-ds-*", "kind:x")
        sink = wamp.subscribe(f"docs-for-{sid}")
        wait_for_sweeps(beater)
        assert published(beater, stream, {"kind": "x", "marker": "ds"}) == 1
        # _index: the concrete index the document went to, the stream's write (backing) index.
        backing = engine_request(engine.url, "GET", f"/_data_stream/{stream}")["data_streams"][0]["indices"]
        assert sink.wait_for_marker("ds")[0]["_index"] == backing[-1]["index_name"]
    finally:
        http("DELETE", f"{engine.url}/_data_stream/{stream}")
        http("DELETE", f"{engine.url}/_index_template/{index}")
