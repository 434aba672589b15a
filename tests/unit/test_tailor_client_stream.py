"""One client's stream in memory: flow control, bound, limit, timeout, heartbeat, release."""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from tailor.streaming.format import JsonFraming, SseFraming
from tailor.streaming.request_watch import RequestWatch
from tailor.subscriptions.resume import Resume
from tailor.tails.stream import ClientStream, StreamStats


class Transport:
    def __init__(self):
        self.lost = False
        self.aborted = False
        self.nodelay = False

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled

    def loseConnection(self):
        self.lost = True

    def abortConnection(self):
        self.aborted = True


class FakeRequest:
    """The parts of twisted.web's Request a ClientStream uses."""

    def __init__(self):
        self.transport = Transport()
        self.code = None
        self.headers = {}
        self.written = bytearray()
        self.producer = None
        self.finished = False
        self._notify: list[Deferred] = []

    def setResponseCode(self, code):
        self.code = code

    def setHeader(self, name, value):
        self.headers[name] = value

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        assert not self.finished
        self.written += data

    def notifyFinish(self):
        d = Deferred()
        self._notify.append(d)
        return d

    def finish(self):
        self.finished = True
        for d in self._notify:
            d.callback(None)

    def disconnect(self):
        for d in self._notify:
            d.errback(Failure(ConnectionError("gone")))


class Stats(StreamStats):
    def __init__(self):
        self.sent = 0
        self.drops = []
        self.ends = []

    def hits_sent(self, n):
        self.sent += n

    def dropped(self, reason):
        self.drops.append(reason)

    def ended(self, how):
        self.ends.append(how)


def make(limit=None, timeout=None, max_pending=10_000, framing=None):
    request, clock, stats, gone = FakeRequest(), Clock(), Stats(), []
    stream = ClientStream(
        request,
        framing or JsonFraming(),
        clock,
        limit=limit,
        timeout=timeout,
        heartbeat=15.0,
        max_pending=max_pending,
        stats=stats,
        on_gone=gone.append,
        watch=RequestWatch(request),
    )
    return stream, request, clock, stats, gone


def hit(n, size=0):
    return {"_index": "l", "_source": {"n": n, "pad": "x" * size}}


def entries(*ns, size=0):
    return [(n, hit(n, size)) for n in ns]


def test_headers_then_opening_then_held_hits_in_order():
    stream, request, _, stats, _ = make()
    stream.deliver(entries(1, 2))  # held before start
    stream.start("sid", str)
    stream.deliver(entries(3))
    assert request.code == 200
    assert request.headers[b"content-type"] == b"application/json"
    assert request.transport.nodelay
    doc = json.loads(bytes(request.written) + b"]}")
    assert [h["_source"]["n"] for h in doc["hits"]] == [1, 2, 3]
    assert stats.sent == 3


def test_limit_closes_a_valid_document_and_releases():
    stream, request, _, stats, gone = make(limit=2)
    stream.start("sid", str)
    stream.deliver(entries(1, 2, 3))
    assert request.finished
    assert [h["_source"]["n"] for h in json.loads(bytes(request.written))["hits"]] == [1, 2]
    assert gone == [stream]
    assert stats.ends == ["limit"]
    stream.deliver(entries(4))  # late fan-out is harmless


def test_timeout_and_heartbeat():
    stream, request, clock, stats, _ = make(timeout=40)
    stream.start("sid", str)
    clock.advance(15)
    clock.advance(15)
    assert bytes(request.written).endswith(b"[\n\n")
    clock.advance(10)
    assert request.finished
    assert json.loads(bytes(request.written)) == {"subscription_id": "sid", "hits": []}
    assert stats.ends == ["timeout"]


def test_writes_while_paused_wait_and_flush_in_order():
    stream, request, _, _, _ = make()
    stream.start("sid", str)
    stream.pauseProducing()
    stream.deliver(entries(1, 2))
    assert stream.pending_bytes > 0
    before = len(request.written)
    stream.resumeProducing()
    assert stream.pending_bytes == 0
    assert len(request.written) > before
    assert [h["_source"]["n"] for h in json.loads(bytes(request.written) + b"]}")["hits"]] == [1, 2]


def test_a_reader_that_stays_behind_is_dropped_with_a_complete_document():
    stream, request, _, stats, gone = make(max_pending=1000)
    stream.start("sid", str)
    stream.deliver(entries(1))
    stream.pauseProducing()
    stream.deliver(entries(2, 3, size=800))  # one big event may exceed the bound...
    assert not request.finished
    stream.deliver(entries(4))  # ...but the next finds the client still behind
    assert request.finished
    doc = json.loads(bytes(request.written))
    assert [h["_source"]["n"] for h in doc["hits"]] == [1]
    assert doc["error"] == "slow_reader"
    assert stats.drops == ["slow_reader"]
    assert request.transport.lost
    assert gone == [stream]
    assert stream.pending_bytes == 0


def test_a_reader_that_catches_up_between_events_is_kept():
    stream, request, _, stats, _ = make(max_pending=1000)
    stream.start("sid", str)
    for n in range(5):
        stream.pauseProducing()
        stream.deliver(entries(n, size=3000))
        stream.resumeProducing()
    assert not request.finished
    assert stats.drops == []
    assert len(json.loads(bytes(request.written) + b"]}")["hits"]) == 5


def test_close_while_paused_finishes_after_the_flush():
    stream, request, _, _, gone = make(limit=1)
    stream.start("sid", str)
    stream.pauseProducing()
    stream.deliver(entries(1))
    assert not request.finished
    stream.resumeProducing()
    assert request.finished
    assert gone == [stream]
    assert json.loads(bytes(request.written))["hits"][0]["_source"]["n"] == 1


def test_disconnect_releases_at_once_and_writes_nothing_more():
    stream, request, clock, stats, gone = make(timeout=5)
    stream.start("sid", str)
    request.disconnect()
    assert gone == [stream]
    assert stats.ends == ["client_gone"]
    size = len(request.written)
    stream.deliver(entries(1))
    clock.advance(20)
    assert len(request.written) == size
    assert clock.getDelayedCalls() == []


def test_a_request_already_gone_is_gone_from_the_start():
    request = FakeRequest()
    watch = RequestWatch(request)  # made when the request arrived
    request.disconnect()  # gone while its query was resolved
    released = []
    stream = ClientStream(
        request,
        JsonFraming(),
        Clock(),
        limit=None,
        timeout=None,
        heartbeat=15,
        max_pending=10,
        stats=Stats(),
        on_gone=released.append,
        watch=watch,
    )
    assert stream.gone
    assert released == [stream]
    stream.start("sid", str)
    assert request.code is None


def test_disconnect_before_start_never_writes():
    stream, request, _, _, gone = make()
    request.disconnect()
    stream.start("sid", str)
    assert request.code is None
    assert bytes(request.written) == b""
    assert gone == [stream]


def test_failure_mid_stream_is_an_error_member():
    stream, request, _, _, _ = make()
    stream.start("sid", str)
    stream.deliver(entries(1))
    stream.fail("router_unavailable", "connection to the router lost")
    doc = json.loads(bytes(request.written))
    assert doc["error"] == "router_unavailable"
    assert doc["hits"][0]["_source"]["n"] == 1


def test_backfill_then_held_without_duplicates_and_late_duplicates_dropped():
    stream, request, _, _, _ = make()
    stored = [hit(1), hit(2)]
    stream.deliver(entries(2, 3))  # 2 was also found by the search
    stream.start("sid", str, backfill=stored, backfill_event_id="e:0")
    stream.deliver([(9, hit(1)), (10, hit(4))])  # 1's live copy arrives late
    ns = [h["_source"]["n"] for h in json.loads(bytes(request.written) + b"]}")["hits"]]
    assert ns == [1, 2, 3, 4]


def test_sse_resume_gap_then_replay_then_live():
    stream, request, _, _, _ = make(framing=SseFraming())
    resume = Resume(entries(5, 6), {"missed": 2, "last_event_id": "e:2"})
    stream.deliver(entries(7))
    stream.start("sid", lambda seq: f"e:{seq}", resume=resume)
    text = bytes(request.written).decode()
    assert text.index("event: gap") < text.index("id: e:5") < text.index("id: e:6") < text.index("id: e:7")


def test_failures_while_holding_end_the_stream_at_start():
    stream, request, _, stats, _ = make(max_pending=100)
    stream.deliver(entries(1, size=500))  # more than the bound before the stream started
    stream.start("sid", str)
    doc = json.loads(bytes(request.written))
    assert (doc["hits"], doc["error"]) == ([], "slow_reader")
    assert stats.drops == ["slow_reader"]

    stream, request, _, _, _ = make()
    stream.fail("router_unavailable", "connection to the router lost")
    stream.start("sid", str)
    doc = json.loads(bytes(request.written))
    assert (doc["error"], doc["reason"]) == ("router_unavailable", "connection to the router lost")
