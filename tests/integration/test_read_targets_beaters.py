"""Read targets across several beaters: a target registered through one is matched by all.

Sweeps are slow here, so what a beater knows of a target comes from the
registration, the subscription, its read of the targets on joining, or the
stored queries themselves (recent registrations and signposts).
"""

from __future__ import annotations

import pytest

from devstack.wamp_client import WampClient
from tests.http_client import engine_request
from tests.integration.read_target_checks import metric, published
from tests.real_stack import EngineHandle, StartService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_a_target_registered_through_one_beater_is_matched_by_all(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    # Slow sweeps: what a beater learns, it learns from the subscription or the registration.
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    # Other tests' targets live in the same engine: count from what each beater knew on joining.
    known = [metric(beater, "estrom_beater_read_targets") for beater in beaters]
    targets = [f"{index}-a-*", f"{index}-b-*"]
    sids = [wamp.call("com.estrom.register_query", t, "kind:x") for t in targets]
    sinks = [wamp.subscribe(f"docs-for-{sid}") for sid in sids]
    for beater, before in zip(beaters, known, strict=True):
        wait_until(
            lambda beater=beater, before=before: metric(beater, "estrom_beater_read_targets") >= before + 2,
            what="both targets known to every beater",
        )
    for n, beater in enumerate(beaters):
        assert published(beater, f"{index}-a-{n}", {"kind": "x", "marker": f"a{n}"}) == 1
        assert published(beater, f"{index}-b-{n}", {"kind": "x", "marker": f"b{n}"}) == 1
    assert [h["_index"] for h in sinks[0].wait_for_marker("a1")] == [f"{index}-a-0", f"{index}-a-1"]
    assert [h["_index"] for h in sinks[1].wait_for_marker("b1")] == [f"{index}-b-0", f"{index}-b-1"]


def test_a_target_registered_through_another_beater_is_matched_before_this_one_learns_of_it(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    # No sweep and no subscription tell a beater of a target registered
    # through the other: it still matches it from its first batch (queries
    # registered since shortly before its last read of the targets are
    # percolated whatever their target, and kept if it covers the index).
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    known = [metric(beater, "estrom_beater_read_targets") for beater in beaters]
    # Round robin: of four registrations, each beater answers some, never all.
    targets = [f"{index}-w{k}-*" for k in range(4)]
    for target in targets:
        wamp.call("com.estrom.register_query", target, "kind:x")
    for beater in beaters:
        for k in range(4):
            assert published(beater, f"{index}-w{k}-1", {"kind": "x"}) == 1
        assert published(beater, f"{index}-other", {"kind": "x"}) == 0
    # Having matched them, each beater knows all four (they are in its covering filter from now on).
    for beater, before in zip(beaters, known, strict=True):
        assert metric(beater, "estrom_beater_read_targets") >= before + 4


def test_a_restarted_beater_knows_the_targets_before_its_first_sweep(
    start_beater: StartService, wamp: WampClient, index: str
) -> None:
    first = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600")
    sid = wamp.call("com.estrom.register_query", f"{index}-*", "kind:x")
    sink = wamp.subscribe(f"docs-for-{sid}")
    first.stop()
    later = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600")
    wait_until(lambda: metric(later, "estrom_beater_read_targets") >= 1, what="target learned on join")
    assert published(later, f"{index}-x", {"kind": "x", "marker": "later"}) == 1
    sink.wait_for_marker("later")


def test_a_query_placed_apart_through_another_beater_is_matched_from_the_first_batch(
    start_beater: StartService, wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    """A query kept out of ``_shared-0`` by a type conflict, registered through one beater, is
    matched by every other from its first batch, with no sweep or subscription to tell them
    (its signpost in ``_shared-0`` does)."""
    beaters = [start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600") for _ in range(2)]
    field = f"code_{index.replace('-', '_')}"  # no other test's documents map it
    texts, numbers = f"{index}-texts", f"{index}-numbers"
    for name, kind in ((texts, "keyword"), (numbers, "long")):
        engine_request(engine.url, "PUT", f"/{name}", {"mappings": {"properties": {field: {"type": kind}}}})
    # Round robin over these beaters and the session's: every beater registers one of the three
    # on ``texts`` (it knows that target in ``_shared-0``), one of them the one on ``numbers``.
    for k in range(3):
        wamp.call("com.estrom.register_query", texts, f"{field}:[100 TO 200] AND k:{k}")
    wamp.call("com.estrom.register_query", numbers, f"{field}:[100 TO 200]")
    holders = set(engine_request(engine.url, "GET", f"/estrom-queries-{numbers}/_alias"))
    assert holders
    assert "estrom-queries-_shared-0" not in holders
    for beater in beaters:
        # As numbers, 1000 is not between 100 and 200; as keywords "1000" would be.
        assert published(beater, numbers, [{field: 1000, "k": 0}, {field: 150, "k": 1}]) == 1
        assert published(beater, texts, [{field: "1000", "k": 2}]) == 1
