"""The tailor's HTTP limits in memory: registration and lookup quotas, remembered unknown sids,
the readers gate it cannot run without, CORS origins, and the header deadline."""

from __future__ import annotations

import json
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from common import contract
from common.access.access_file import ReadersHolder
from common.access.quotas import QuotaLimits
from common.access.readers import Readers
from common.config import Settings
from common.page_origins import router_page_origins
from tailor.http.api import TailorAPI
from tailor.http.site import TailSite
from tailor.readers.gate import ReaderGate
from tailor.streaming.format import EncodedHit
from tailor.subscriptions.hub import SubscriptionHub
from tests.memory.doubles import (
    DESCRIBE,
    REGISTER,
    MemoryEngine,
    MemorySession,
    MemoryWamp,
    no_aliases,
    result,
)


class Session(MemorySession):
    """Answers an unknown sid as a beater does: the no_such_query error, not an exception."""

    def call(self, procedure: str, *args: Any) -> Deferred[Any]:
        try:
            return super().call(procedure, *args)
        except ApplicationError as exc:
            return fail(exc)

    def _describe(self, sid: str) -> dict[str, Any]:
        if sid not in self.stored:
            raise ApplicationError(contract.NO_SUCH_QUERY.uri, f"no query with sid {sid!r}")
        return self.stored[sid]


class Tailor:
    def __init__(self, limits: QuotaLimits, **settings: Any) -> None:
        self.clock = Clock()
        self.session = Session()
        self.settings = Settings(**settings)
        wamp = MemoryWamp(self.session)
        hub = SubscriptionHub(wamp, self.clock, 100, 0.0, prepare=EncodedHit)  # type: ignore[arg-type]
        self.gate = ReaderGate(ReadersHolder(Readers.open_default()), limits, 2, self.clock.seconds)
        self.api = TailorAPI(
            self.settings,
            MemoryEngine(),
            wamp,
            hub,
            self.clock,
            self.gate,
            no_aliases,  # type: ignore[arg-type]
        )
        self.http = StubTreq(self.api.routes())

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> tuple[int, Any, Any]:
        d = self.http.get("http://tailor" + path, params=params, headers=headers)
        self.http.flush()
        response = result(d)
        if response.code != 200:
            return response.code, response.headers, json.loads(result(self.http.content(response)))
        return response.code, response.headers, None


LIMITED = QuotaLimits(
    registrations_per_second=0.01, registrations_burst=3, describes_per_second=0.01, describes_burst=2
)


def test_tails_and_counts_share_the_registration_bucket_and_get_429_naming_it():
    tailor = Tailor(LIMITED)
    statuses = [tailor.get("/api/v0.1/docs", i="logs", q=f"k:{i}", timeout="0.1")[0] for i in range(3)]
    assert statuses == [200, 200, 200]
    for path in ("/api/v0.1/docs", "/api/v0.1/counts"):
        status, headers, body = tailor.get(path, i="logs", q="k:new")
        assert status == 429
        assert int(headers.getRawHeaders("retry-after")[0]) >= 1
        assert (body["error"], body["limit"], body["value"]) == (
            "quota_exceeded",
            "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND",
            0.01,
        )
    registrations = [c for c in tailor.session.calls if c[0] == REGISTER]
    assert len(registrations) == 3
    assert (
        tailor.api.metrics.value("reader_refusals_total", reason="ESTROM_QUOTA_REGISTRATIONS_PER_SECOND") == 2
    )


def test_a_query_already_held_by_this_tailor_costs_no_registration():
    tailor = Tailor(QuotaLimits(registrations_per_second=0.01, registrations_burst=1))
    first = tailor.http.get("http://tailor/api/v0.1/docs", params={"i": "logs", "q": "held:yes"})
    tailor.http.flush()
    assert result(first).code == 200
    for _ in range(5):
        assert tailor.get("/api/v0.1/docs", i="logs", q="held:yes", timeout="0.1")[0] == 200


def test_unknown_sids_are_remembered_and_lookups_are_rationed():
    tailor = Tailor(LIMITED, unknown_sid_ttl=60.0)
    for _ in range(20):
        status, _, body = tailor.get("/api/v0.1/docs", s="0123456789abcdef")
        assert (status, body["error"]) == (404, "no_such_query")
    describes = [c for c in tailor.session.calls if c[0] == DESCRIBE]
    assert len(describes) == 1
    assert tailor.api.metrics.value("sid_lookups_total", outcome="remembered") == 19
    status, _, body = tailor.get("/api/v0.1/docs", s="1123456789abcdef")
    assert status == 404
    status, _, body = tailor.get("/api/v0.1/docs", s="2123456789abcdef")
    assert (status, body["limit"]) == (429, "ESTROM_QUOTA_DESCRIBES_PER_SECOND")
    tailor.clock.advance(60)
    status, _, body = tailor.get("/api/v0.1/docs", s="0123456789abcdef")
    assert (status, body["limit"]) == (429, "ESTROM_QUOTA_DESCRIBES_PER_SECOND")  # forgotten: a lookup again


def test_registering_a_sid_here_forgets_that_it_was_unknown():
    tailor = Tailor(QuotaLimits(), unknown_sid_ttl=60.0)
    from common.query.identity import sid_for

    sid = sid_for("logs", "late:yes")
    assert tailor.get("/api/v0.1/docs", s=sid)[0] == 404
    assert tailor.get("/api/v0.1/docs", i="logs", q="late:yes", timeout="0.1")[0] == 200
    assert tailor.get("/api/v0.1/docs", s=sid, timeout="0.1")[0] == 200


def test_the_api_cannot_be_built_without_a_gate():
    with pytest.raises(TypeError):
        TailorAPI(Settings(), MemoryEngine(), MemoryWamp(Session()), None, Clock())  # type: ignore[call-arg, arg-type]


# -- CORS -----------------------------------------------------------------------------


def test_the_default_origins_are_the_router_page():
    assert Settings().cors_origins() == ("http://127.0.0.1:8080", "http://localhost:8080")
    assert Settings.from_env({}).cors_origins() == ("http://127.0.0.1:8080", "http://localhost:8080")
    routed = Settings.from_env({"ESTROM_ROUTER_URL": "ws://localhost:9090/ws"})
    assert routed.cors_origins() == ("http://127.0.0.1:9090", "http://localhost:9090")
    assert router_page_origins("wss://estrom.example.org/ws") == (
        "https://127.0.0.1,https://localhost,https://estrom.example.org"
    )
    assert router_page_origins("ws://router:8080/ws") == (
        "http://127.0.0.1:8080,http://localhost:8080,http://router:8080"
    )
    assert Settings.from_env({"ESTROM_TAILOR_CORS_ORIGIN": "*"}).cors_origins() == ("*",)
    assert Settings.from_env({"ESTROM_TAILOR_CORS_ORIGIN": ""}).cors_origins() == ()
    listed = Settings.from_env({"ESTROM_TAILOR_CORS_ORIGIN": "https://a.example/, https://b.example"})
    assert listed.cors_origins() == ("https://a.example", "https://b.example")


def test_a_listed_origin_is_named_back_and_others_get_the_first():
    tailor = Tailor(QuotaLimits())
    params = {"i": "logs", "q": "cors:yes", "timeout": "0.1"}
    _, headers, _ = tailor.get("/api/v0.1/docs", {"Origin": "http://localhost:8080"}, **params)
    assert headers.getRawHeaders("access-control-allow-origin") == ["http://localhost:8080"]
    assert headers.getRawHeaders("vary") == ["Origin"]
    _, headers, _ = tailor.get("/api/v0.1/docs", {"Origin": "https://evil.example"}, **params)
    assert headers.getRawHeaders("access-control-allow-origin") == ["http://127.0.0.1:8080"]
    _, headers, _ = tailor.get("/api/v0.1/counts", **params)
    assert headers.getRawHeaders("access-control-allow-origin") == ["http://127.0.0.1:8080"]
    anyone = Tailor(QuotaLimits(), tailor_cors_origin="*")
    _, headers, _ = anyone.get("/api/v0.1/docs", {"Origin": "https://evil.example"}, **params)
    assert headers.getRawHeaders("access-control-allow-origin") == ["*"]
    nobody = Tailor(QuotaLimits(), tailor_cors_origin="")
    _, headers, _ = nobody.get("/api/v0.1/docs", {"Origin": "http://localhost:8080"}, **params)
    assert headers.getRawHeaders("access-control-allow-origin") is None


# -- the header deadline ----------------------------------------------------------------


def connect(timeout: float) -> tuple[Any, StringTransport, Clock, list[str]]:
    tailor = Tailor(QuotaLimits())
    clock, timed_out = Clock(), []
    site = TailSite(
        tailor.api.routes(), send_buffer=0, timeout=timeout, on_timeout=lambda: timed_out.append("x")
    )
    channel = site.buildProtocol(None)
    channel.callLater = clock.callLater
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport, clock, timed_out


def test_a_client_trickling_its_headers_is_cut_at_the_deadline():
    channel, transport, clock, timed_out = connect(2.0)
    for byte in b"GET /healthz HTTP/1.1\r\nHost: x":
        channel.dataReceived(bytes([byte]))
        clock.advance(0.05)  # 1.45 s of bytes, none of which restarts the clock
    assert not transport.disconnecting
    clock.advance(0.6)
    assert timed_out == ["x"]
    assert transport.disconnecting


def test_a_request_in_time_is_not_cut_while_it_is_answered():
    channel, transport, clock, timed_out = connect(2.0)
    channel.dataReceived(b"GET /api/v0.1/docs?i=logs&q=open:yes HTTP/1.1\r\nHost: x\r\n\r\n")
    clock.advance(60)
    assert timed_out == []
    assert b"200 OK" in transport.value()
    assert not transport.disconnecting


def test_tails_of_one_query_opened_at_once_send_one_registration():
    tailor = Tailor(QuotaLimits(registrations_per_second=0.01, registrations_burst=1))
    tailor.session.hold_calls = True
    params = {"i": "logs", "q": "same:yes", "timeout": "0.1"}
    waiting = [tailor.http.get("http://tailor/api/v0.1/docs", params=params) for _ in range(5)]
    tailor.http.flush()
    assert len(tailor.session.held) == 1
    tailor.session.answer_held()
    tailor.http.flush()
    assert [result(d).code for d in waiting] == [200] * 5


def test_the_shared_registration_is_cancelled_only_when_every_client_left():
    tailor = Tailor(QuotaLimits())
    tailor.session.hold_calls = True
    params = {"i": "logs", "q": "left:yes"}
    first = tailor.http.get("http://tailor/api/v0.1/docs", params=params)
    second = tailor.http.get("http://tailor/api/v0.1/docs", params={**params, "timeout": "0.1"})
    tailor.http.flush()
    ((call, _),) = tailor.session.held
    first.cancel()
    first.addErrback(lambda _: None)
    tailor.http.flush()
    assert not call.called
    tailor.session.answer_held()
    tailor.http.flush()
    assert result(second).code == 200
