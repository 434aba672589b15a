"""A stack started on the older one-percolator-index-per-target layout is migrated on start.

The older layout is written here by hand, as the older beaters wrote it:
``estrom-queries-<name>`` for a single name, ``estrom-queries-_t<hash>`` with
the target in the mapping's ``_meta`` for a pattern. A beater that starts
copies their queries (sid, lifecycle state and all) into the shared
percolator index and turns each old name into the target's filtered alias.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from beater.store.schema import REGISTERED_FIELD, TARGET_FIELD, field_mapping_for, percolator_index_body
from common.query.limits import QueryLimits
from common.query.prepared import prepare
from common.query.targets import parse_target, percolator_suffix
from devstack.wamp_client import WampClient
from tests.http_client import engine_request, ingest
from tests.real_stack import EngineHandle, StartService
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def legacy_index(engine: EngineHandle, target: str, queries: dict[str, bool]) -> tuple[str, dict[str, str]]:
    """An older beater's percolator index of ``target`` holding ``queries`` (query -> active); name, sids."""
    canonical = parse_target(target)
    name = "estrom-queries-" + percolator_suffix(canonical)
    body = percolator_index_body(1, 0)
    for own in (TARGET_FIELD, REGISTERED_FIELD):
        del body["mappings"]["properties"][own]
    if canonical.single_name is None:
        body["mappings"]["_meta"] = {"estrom_target": canonical.canonical}
    body["mappings"]["properties"]["kind"] = field_mapping_for("kind", {})
    engine_request(engine.url, "PUT", f"/{name}", body)
    now = int(time.time() * 1000)
    sids: dict[str, str] = {}
    for text, active in queries.items():
        prepared = prepare(text, QueryLimits())
        sid = prepared.sid(canonical.canonical)
        doc: dict[str, Any] = {
            "estrom_query": prepared.dsl,
            "estrom_sid": sid,
            "estrom_meta": {
                "index": canonical.canonical,
                "query": prepared.canonical,
                "registered_at": now / 1000,
            },
            "estrom_active": active,
            "estrom_last_active": now,
            "estrom_idle_since": None if active else now,
        }
        engine_request(engine.url, "PUT", f"/{name}/_doc/{sid}?refresh=true", doc)
        sids[text] = sid
    return name, sids


#: A shared percolator index (a rebuilt one has a generation suffix).
SHARED = re.compile(r"^estrom-queries-_shared-\d+(_g\d+)?$")


def test_queries_of_the_older_layout_move_to_the_shared_index_on_start(
    start_beater: StartService, wamp: WampClient, admin_wamp: WampClient, engine: EngineHandle, index: str
) -> None:
    single, single_sids = legacy_index(engine, index, {"kind:a": True, "kind:idle": False})
    pattern, pattern_sids = legacy_index(engine, f"{index}-*", {"kind:b": True})
    # The active ones have a subscriber (an admin session may subscribe to any topic): else
    # any beater's sweep (the session's too) deactivates them once their last activity is a
    # sweep interval old, which a slow start and migration can outlast.
    for sid in (single_sids["kind:a"], pattern_sids["kind:b"]):
        admin_wamp.subscribe(f"docs-for-{sid}")
    # Slow sweeps: the migration is the beater's start's.
    beater = start_beater(ESTROM_QUERY_GRACE="600", ESTROM_QUERY_SWEEP_INTERVAL="600")

    def migrated() -> bool:
        # The shared index with room for their fields: _shared-0 unless the session filled it.
        return all(
            [SHARED.match(n) is not None for n in engine_request(engine.url, "GET", f"/{name}/_alias")]
            == [True]
            for name in (single, pattern)
        )

    wait_until(migrated, what="older percolator indices replaced by aliases on the shared index")
    # Same sids, same descriptions, same lifecycle state.
    assert wamp.call("com.estrom.describe_query", single_sids["kind:a"]) == {
        "sid": single_sids["kind:a"],
        "index": index,
        "query": "kind:a",
    }
    assert wamp.call("com.estrom.describe_query", pattern_sids["kind:b"])["index"] == f"{index}-*"
    stored = engine_request(engine.url, "GET", f"/{single}/_search")["hits"]["hits"]
    assert {h["_id"]: h["_source"]["estrom_active"] for h in stored} == {
        single_sids["kind:a"]: True,
        single_sids["kind:idle"]: False,
    }
    assert ingest(beater.url, index, [{"kind": "a"}, {"kind": "idle"}]).json()["published"] == 1
    assert ingest(beater.url, f"{index}-2026.12.01", {"kind": "b"}).json()["published"] == 1
    # Registering the same query again gives the same sid, and no second copy.
    sid = wamp.call("com.estrom.register_query", index, "kind:a")
    assert sid == single_sids["kind:a"]
    assert engine_request(engine.url, "GET", f"/{single}/_count")["count"] == 2
