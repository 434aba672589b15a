"""The Logstash-like sender against a real HTTP server on loopback: what it retries, drops, records."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.sender import ONCE, Retry, Sender, retried

QUICK = Retry(first=0.01, most=0.02, retry_after=False)


class Beater(ThreadingHTTPServer):
    """Answers the statuses in ``script`` in turn (then 200), as the beater's ingest would."""

    def __init__(self, script: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script = script
        self.bodies: list[list[dict]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Beater

    def do_POST(self) -> None:
        docs = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.server.lock:
            status = self.server.script.pop(0) if self.server.script else 200
            self.server.bodies.append(docs)
        body = json.dumps({"accepted": len(docs), "published": 2 * len(docs), "rejected": []}).encode()
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def beater(request: pytest.FixtureRequest) -> Iterator[Beater]:
    server = Beater(list(getattr(request, "param", [])))
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def numbered(numbers: Sequence[int], _sent_at: float) -> bytes:
    return json.dumps([{"n": n} for n in numbers]).encode()


def test_which_outcomes_are_sent_again() -> None:
    assert [retried(o) for o in ("200", "429", "503", "400", "413", "refused", "timeout")] == [
        False,
        True,
        True,
        False,
        False,
        True,
        True,
    ]


@pytest.mark.parametrize("beater", [[503, 429]], indirect=True)
def test_a_refused_batch_is_sent_again_until_taken(beater: Beater) -> None:
    sender = Sender(beater.url, "logs", numbered, docs_per_batch=3, retry=QUICK)
    assert sender.send([0, 1, 2]) == "200"
    stats = sender.stats
    assert [a.outcome for a in stats.attempts] == ["503", "429", "200"]
    assert stats.retries == {"503": 1, "429": 1}
    assert (stats.docs, stats.accepted, stats.published, stats.acked_ids) == (3, 3, 6, {0, 1, 2})
    assert len(stats.latencies) == 1
    assert beater.bodies == [[{"n": 0}, {"n": 1}, {"n": 2}]] * 3  # the whole batch each time


@pytest.mark.parametrize("beater", [[400]], indirect=True)
def test_another_4xx_drops_the_batch_and_a_strict_sender_says_so(beater: Beater) -> None:
    lenient = Sender(beater.url, "logs", numbered, retry=QUICK)
    assert lenient.send([7]) == "400"
    assert lenient.stats.dropped == [0]
    assert "a sender would drop this batch" in lenient.stats.errors[0]
    beater.script.append(400)
    strict = Sender(beater.url, "logs", numbered, retry=QUICK, strict=True)
    with pytest.raises(AssertionError, match="beater answered 400"):
        strict.send([8])


@pytest.mark.parametrize("beater", [[503, 503]], indirect=True)
def test_attempts_are_bounded_when_the_policy_says(beater: Beater) -> None:
    sender = Sender(beater.url, "logs", numbered, retry=ONCE)
    assert sender.send([1]) == "503"
    assert sender.stats.dropped == [0]
    assert sender.stats.docs == 0


def test_a_closed_loop_numbers_documents_on_and_stops_on_request(beater: Beater) -> None:
    sender = Sender(beater.url, "logs", numbered, docs_per_batch=5, retry=QUICK).start(concurrency=2)
    sender.wait(lambda s: len(s.acked) >= 4, 10, "4 batches")
    stats = sender.stop()
    numbers = sorted(stats.acked_numbers)
    assert numbers == list(range(len(numbers)))  # consecutive, none twice
    assert sender.next_number == len(numbers)
    assert stats.end >= stats.start


def test_a_paced_load_keeps_its_schedule(beater: Beater) -> None:
    stats = Sender(beater.url, "logs", numbered, docs_per_batch=10).start_paced(1000.0, 0.1).join(10)
    # batches due at 0, 10, ..., 90 ms: ten of them, each with the next ten numbers
    assert sorted(stats.acked_numbers) == list(range(100))


def test_a_refused_connection_is_an_outcome_not_an_exception() -> None:
    sender = Sender("http://127.0.0.1:9", "logs", numbered, retry=ONCE)
    assert sender.send([1]) == "refused"
    assert sender.stats.attempts[0].sent is False
