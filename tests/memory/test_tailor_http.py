"""The tailor's HTTP face in memory: routing, limits, resolve, hand-over, a client leaving.

A real Site and Agent (treq's StubTreq) over a memory reactor, the real
resource, streams and hub; the router and the engine are the doubles of
tests/memory/doubles.py. Each test runs in milliseconds; the same paths
through real processes are in tests/tailor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.testing import StringTransport

from common.contract import INVALID_QUERY, UNAVAILABLE, WAMP_NO_SUCH_PROCEDURE, WAMP_NOT_AUTHORIZED
from common.engine import EngineUnavailable
from common.query.identity import sid_for
from tailor.http.site import TailSite
from tests.memory.doubles import DESCRIBE, REGISTER, Collected, MemoryTailor, has_result, result


def body(tailor: MemoryTailor, d):
    tailor.flush()
    response = result(d)
    content = result(tailor.http.content(response))
    return response.code, json.loads(content)


def test_unknown_paths_are_404_and_wrong_methods_405_as_json():
    tailor = MemoryTailor()
    assert body(tailor, tailor.get("/api/v0.1/nothing")) == (
        404,
        {"error": "not_found", "reason": "no such endpoint"},
    )
    tailor.flush()
    status, answer = body(tailor, tailor.http.post("http://tailor/api/v0.1/docs", data=b""))
    assert (status, answer["error"]) == (405, "method_not_allowed")


def test_healthz_and_metrics_answer():
    tailor = MemoryTailor()
    assert body(tailor, tailor.get("/healthz")) == (
        200,
        {
            "status": "ok",
            "engine": "ok",
            "router": "ok",
            "cluster": {"status": "green", "nodes": 1, "unassigned_shards": 0},
        },
    )
    tailor.flush()
    response = result(tailor.get("/metrics"))
    text = result(tailor.http.text_content(response))
    assert "estrom_tailor_clients 0" in text


def test_missing_parameters_are_400_and_nothing_is_registered():
    tailor = MemoryTailor()
    status, answer = body(tailor, tailor.get("/api/v0.1/docs", i="logs"))
    assert (status, answer["error"]) == (400, "missing_parameter")
    assert tailor.session.calls == []


def test_a_query_over_the_size_limit_is_400_before_any_registration():
    tailor = MemoryTailor(query_max_bytes=64)
    status, answer = body(tailor, tailor.get("/api/v0.1/docs", i="logs", q="word " * 40))
    assert (status, answer["error"]) == (400, "invalid_query")
    assert "64" in answer["reason"]
    assert tailor.session.calls == []


def test_a_backfill_over_the_maximum_is_400():
    tailor = MemoryTailor(tailor_max_backfill=5)
    status, answer = body(tailor, tailor.get("/api/v0.1/docs", i="logs", q="x", n="6"))
    assert (status, answer["error"]) == (400, "invalid_parameter")


def test_a_request_line_over_the_limit_is_a_json_414():
    tailor = MemoryTailor()
    site = TailSite(tailor.resource, send_buffer=0)
    channel = site.buildProtocol(None)
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /api/v0.1/docs?q=" + b"x" * (channel.MAX_LENGTH + 1))
    head, _, payload = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 414")
    assert json.loads(payload)["error"] == "request_too_long"


def test_a_sid_whose_query_now_registers_as_another_is_404():
    tailor = MemoryTailor()
    tailor.session.stored["0123456789abcdef"] = {"sid": "0123456789abcdef", "index": "logs", "query": "a:1"}
    status, answer = body(tailor, tailor.get("/api/v0.1/docs", s="0123456789abcdef"))
    assert status == 404
    assert answer["error"] == "no_such_query"
    assert answer["registered_as"] != "0123456789abcdef"
    assert [c[0] for c in tailor.session.calls] == [DESCRIBE, REGISTER]
    assert tailor.session.subscribers(answer["registered_as"]) == 0
    assert len(tailor.hub) == 0


def test_backfill_then_live_without_gap_or_duplicate():
    tailor = MemoryTailor()
    tailor.engine.store("logs", {"n": 1}, {"n": 2})
    tailor.engine.hold = True  # the backfill search waits: live hits arrive meanwhile
    d = tailor.get("/api/v0.1/docs", i="logs", q="n:*", n="2", format="ndjson")
    tailor.flush()
    assert tailor.engine.held, "the backfill search started"
    sid = sid_for("logs", "n:*")
    # Stored and published around the search: 2 is both in the store and live.
    tailor.session.publish(
        sid, {"_index": "logs", "_source": {"n": 2}}, {"_index": "logs", "_source": {"n": 3}}
    )
    tailor.flush()
    assert not has_result(d), "no status before the backfill is in"
    tailor.engine.release()
    tailor.flush()
    stream = Collected(tailor, result(d))
    tailor.session.publish(sid, {"_index": "logs", "_source": {"n": 4}})
    lines = stream.lines()
    assert lines[0] == {"subscription_id": sid}
    assert [line["_source"]["n"] for line in lines[1:]] == [1, 2, 3, 4]


def test_a_client_leaving_during_registration_cancels_it_and_subscribes_nothing():
    tailor = MemoryTailor()
    tailor.session.hold_calls = True
    d = tailor.get("/api/v0.1/docs", i="logs", q="gone:soon")
    tailor.flush()
    ((pending, _),) = tailor.session.held
    d.cancel()  # the client hangs up
    d.addErrback(lambda _: None)
    tailor.flush()
    assert pending.called, "the registration call was cancelled"
    tailor.session.answer_held()
    assert len(tailor.hub) == 0
    assert tailor.api.streams == set()
    assert tailor.api.metrics.value("requests_cancelled_total") == 1


def test_a_client_leaving_during_backfill_cancels_it_and_unsubscribes():
    tailor = MemoryTailor()
    tailor.engine.hold = True
    d = tailor.get("/api/v0.1/docs", i="logs", q="gone:later", n="5")
    tailor.flush()
    sid = sid_for("logs", "gone:later")
    assert tailor.session.subscribers(sid) == 1
    (search,) = tailor.engine.held
    d.cancel()
    d.addErrback(lambda _: None)
    tailor.flush()
    assert search.called, "the backfill search was cancelled"
    assert tailor.session.subscribers(sid) == 0
    assert len(tailor.hub) == 0
    assert tailor.api.streams == set()


def test_clients_of_one_sid_share_one_subscription_and_the_last_out_unsubscribes():
    tailor = MemoryTailor()
    first = tailor.get("/api/v0.1/docs", i="logs", q="shared:yes", format="ndjson", limit="1")
    second = tailor.get("/api/v0.1/docs", i="logs", q="shared:yes", format="ndjson", limit="1")
    tailor.flush()
    streams = [Collected(tailor, result(first)), Collected(tailor, result(second))]
    sid = streams[0].lines()[0]["subscription_id"]
    assert tailor.session.subscribers(sid) == 1
    assert [c[0] for c in tailor.session.calls] == [REGISTER]  # the second skipped registration
    tailor.session.publish(sid, {"_index": "logs", "_source": {"k": 1}})
    assert all(s.lines()[1:] == [{"_index": "logs", "_source": {"k": 1}}] for s in streams)
    tailor.flush()
    assert all(s.done.called for s in streams), "both ended at their limit"
    assert tailor.session.subscribers(sid) == 0
    assert len(tailor.hub) == 0


# --- refused before streaming: one answer each, whoever finds the trouble ---


def answer(tailor: MemoryTailor, d) -> tuple[int, dict[str, Any], list[str] | None]:
    """Status, JSON body and Retry-After of a refused request."""
    tailor.flush()
    response = result(d)
    content = result(tailor.http.content(response))
    return response.code, json.loads(content), response.headers.getRawHeaders("retry-after")


async def engine_away(_target: str, _own_prefix: str) -> list[str]:
    raise EngineUnavailable("engine unreachable: ConnectionError")


def _router_away(tailor: MemoryTailor) -> None:
    tailor.wamp.joined = False


def _no_beater(tailor: MemoryTailor) -> None:
    tailor.session.refuse[REGISTER] = ApplicationError(WAMP_NO_SUCH_PROCEDURE)


def _beater_unavailable(tailor: MemoryTailor) -> None:
    tailor.session.refuse[REGISTER] = ApplicationError(UNAVAILABLE.uri, "engine did not answer within 5s")


def _beater_says_other(tailor: MemoryTailor) -> None:
    tailor.session.refuse[REGISTER] = ApplicationError("com.example.odd", "what")


def _subscription_refused(tailor: MemoryTailor) -> None:
    tailor.session.refuse_subscribe = ApplicationError(WAMP_NOT_AUTHORIZED, "no")


def _aliases_unread(tailor: MemoryTailor) -> None:
    tailor.api.tail_endpoint.admission.aliases = engine_away


def _backfill_unread(tailor: MemoryTailor) -> None:
    tailor.engine.down = True


@pytest.mark.parametrize(
    ("trouble", "params", "reason"),
    [
        (_router_away, {}, "not connected to the router"),
        (_no_beater, {}, "no beater is registered with the router; retry later"),
        (_beater_unavailable, {}, "engine did not answer within 5s"),
        (_beater_says_other, {}, "router answered com.example.odd: what"),
        (_subscription_refused, {}, "router refused the subscription: "),
        (_aliases_unread, {}, "engine unreachable: ConnectionError"),
        (_backfill_unread, {"n": "5"}, "engine unreachable: ConnectionError"),
    ],
)
def test_a_trouble_that_clears_is_a_503_with_the_configured_retry_after(
    trouble: Callable[[MemoryTailor], None], params: dict[str, str], reason: str
):
    tailor = MemoryTailor(retry_after=7)
    trouble(tailor)
    status, refusal, retry_after = answer(tailor, tailor.get("/api/v0.1/docs", i="logs", q="x:1", **params))
    assert (status, refusal["error"], retry_after) == (503, "unavailable", ["7"])
    assert refusal["reason"].startswith(reason), refusal
    assert list(refusal) == ["error", "reason"]
    assert tailor.api.metrics.value("requests_failed_total", status="503") == 1
    assert tailor.api.metrics.value("reader_refusals_total", reason="unavailable") == 0
    assert len(tailor.hub) == 0
    assert tailor.api.streams == set()


def test_counting_the_past_with_the_engine_away_is_a_503_too():
    tailor = MemoryTailor(retry_after=7)
    tailor.engine.down = True
    status, refusal, retry_after = answer(
        tailor, tailor.get("/api/v0.1/counts", i="logs", q="x:1", since="1m")
    )
    assert (status, refusal, retry_after) == (
        503,
        {"error": "unavailable", "reason": "engine unreachable: ConnectionError"},
        ["7"],
    )
    assert tailor.api.metrics.value("requests_failed_total", status="503") == 1
    assert len(tailor.hub) == 0
    assert tailor.api.count_streams == set()


def test_a_query_the_beater_refuses_is_its_400_with_the_reason():
    tailor = MemoryTailor()
    tailor.session.refuse[REGISTER] = ApplicationError(INVALID_QUERY.uri, "unknown field [nope]")
    status, refusal, retry_after = answer(tailor, tailor.get("/api/v0.1/docs", i="logs", q="x:1"))
    assert (status, refusal, retry_after) == (
        400,
        {"error": "invalid_query", "reason": "unknown field [nope]"},
        None,
    )
    assert tailor.api.metrics.value("requests_failed_total", status="400") == 1
