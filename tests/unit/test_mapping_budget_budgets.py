"""Field budgets per target and per reader, whom a registration counts for, and the events they report (pure).

One target or reader must not fill the shared percolator index with new
fields: the budgets bound the new fields their stored queries bring.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from beater.queries.rpc import principal_of
from beater.store.budget import FieldBudget, FieldBudgetExceeded
from beater.store.events import StoreEvents
from common.metrics import Metrics

P = "estrom-queries-"


class FakeEngine:
    """``search`` answers the distinct ``estrom_new_fields`` of the stored queries matching the term."""

    def __init__(self, stored: list[dict[str, Any]]) -> None:
        self.stored = stored
        self.searches = 0

    def search(self, index: str, body: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        self.searches += 1
        ((field, key),) = body["query"]["term"].items()
        found = sorted({f for doc in self.stored if doc.get(field) == key for f in doc["estrom_new_fields"]})
        size = body["aggs"]["used"]["terms"]["size"]
        return {"aggregations": {"used": {"buckets": [{"key": f} for f in found[:size]]}}}


def test_a_target_s_new_fields_are_bounded_and_fields_counted_already_are_free() -> None:
    es = FakeEngine([{"estrom_target": "a", "estrom_new_fields": ["x1", "x2", "x3"]}])
    budget = FieldBudget(P, per_target=4, per_principal=0)
    budget.check_now(es, "a", None, frozenset({"x4"}))  # 4 of 4
    with pytest.raises(FieldBudgetExceeded) as err:
        budget.check_now(es, "a", None, frozenset({"x5"}))
    assert err.value.limit == "ESTROM_FIELDS_PER_TARGET"
    assert "'a'" in str(err.value)
    assert "over the limit of 4 (ESTROM_FIELDS_PER_TARGET)" in str(err.value)
    budget.check_now(es, "a", None, frozenset({"x1", "x4"}))  # counted already
    budget.check_now(es, "b", None, frozenset({"x5", "x6", "x7", "x8"}))  # another target
    # No new field, or only fields known counted: no engine call at all.
    assert budget.counted("a", None, frozenset())
    assert budget.counted("a", None, frozenset({"x1", "x4"}))
    assert not budget.counted("a", None, frozenset({"x9"}))


def test_what_this_beater_admitted_counts_until_the_engine_shows_it() -> None:
    now = [1000.0]
    es = FakeEngine([])
    budget = FieldBudget(P, per_target=3, per_principal=0, clock=lambda: now[0])
    budget.check_now(es, "a", None, frozenset({"x1", "x2"}))
    with pytest.raises(FieldBudgetExceeded):  # not written yet, counted all the same
        budget.check_now(es, "a", None, frozenset({"x3", "x4"}))
    now[0] += 3600  # long after: only what the engine holds counts (the query was never stored)
    budget.check_now(es, "a", None, frozenset({"x3", "x4"}))


def test_a_reader_s_budget_spans_its_targets_and_anonymous_browsers_have_none() -> None:
    es = FakeEngine(
        [
            {"estrom_target": "a", "estrom_principal": "ann", "estrom_new_fields": ["p1", "p2"]},
            {"estrom_target": "b", "estrom_principal": "ann", "estrom_new_fields": ["p3"]},
        ]
    )
    budget = FieldBudget(P, per_target=10, per_principal=3)
    with pytest.raises(FieldBudgetExceeded) as err:
        budget.check_now(es, "c", "ann", frozenset({"p4"}))
    assert err.value.limit == "ESTROM_FIELDS_PER_PRINCIPAL"
    budget.check_now(es, "c", "bob", frozenset({"p4"}))
    budget.check_now(es, "c", None, frozenset({"p5"}))


def test_who_a_registration_is_counted_for() -> None:
    def details(role: str, authid: str = "x") -> Any:
        return SimpleNamespace(caller_authrole=role, caller_authid=authid)

    assert principal_of(details("reader", "ann"), None) == "ann"
    assert principal_of(details("reader", "ann"), "someone-else") == "ann"  # a reader cannot pick
    assert principal_of(details("tailor"), "anonymous@192.0.2.1") == "anonymous@192.0.2.1"
    assert principal_of(details("tailor"), None) is None
    assert principal_of(details("tailor"), "x" * 300) is None
    assert principal_of(details("browser", "random-per-connection"), "forged") is None
    assert principal_of(None, "forged") is None


def test_store_events_reach_the_metrics_and_are_kept() -> None:
    metrics = Metrics("estrom_beater_", process=False)
    events = StoreEvents(metrics)
    events.inc("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS")
    events.inc("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS")
    events.set("percolator_fields", 42, index=P + "_shared-0")
    assert metrics.value("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS") == 2
    assert metrics.value("percolator_fields", index=P + "_shared-0") == 42
    assert events.value("queries_refused_total", limit="ESTROM_QUERY_MAX_FIELDS") == 2
