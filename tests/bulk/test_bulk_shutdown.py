"""A beater stopped (SIGTERM) while bulk requests are in flight: it finishes them, publishes, then exits.

What happens (``beater/bulk/api.py``, ``beater/http/drain.py``): the ports stop
listening; a bulk request already read is finished: forwarded, answered
with the engine's answer, and its stored documents are published before
the beater leaves the router, all within ``ESTROM_SHUTDOWN_GRACE``. A bulk
request that arrives on an open connection during the drain gets 503 (in
tests/memory/test_bulk_body_limits.py). When the grace runs out with the
engine still not answering, the shipper gets 503 with ``Retry-After`` (the
engine may have stored some documents: it sends again, at-least-once), and
the beater exits without an unhandled error.

The engine sits behind a slow (or wedged) TCP proxy, so the requests are
in flight when the signal comes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.metrics_page import metric
from devstack.wamp_client import WampClient
from tests.http_client import Response, engine_request, http
from tests.real_stack import EngineHandle, StartService
from tests.tcp_proxy import TCPProxy, proxy_to
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

#: How long a SIGTERMed beater may take to exit: its grace (70 s at most here), leaving the
#: router (2 s), slack.
EXIT_BOUND = 90.0


@pytest.fixture
def proxies() -> Iterator[list[TCPProxy]]:
    made: list[TCPProxy] = []
    yield made
    for proxy in made:
        proxy.close()


def bulk_in_thread(url: str, index: str, n: int) -> tuple[threading.Thread, list[Response]]:
    body = "".join(
        json.dumps({"create": {"_index": index}}) + "\n" + json.dumps({"kind": "t", "n": i}) + "\n"
        for i in range(n)
    )
    answers: list[Response] = []

    def send() -> None:
        answers.append(
            http("POST", url + "/_bulk", body, {"content-type": "application/x-ndjson"}, timeout=120)
        )

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread, answers


def in_flight(url: str) -> float:
    return metric(url, "estrom_beater_bulk_requests_in_flight")


def test_sigterm_finishes_bulk_requests_in_flight_and_publishes_them(
    start_beater: StartService,
    engine: EngineHandle,
    wamp: WampClient,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    slow = proxy_to(proxies, engine.url)
    # The engine timeout well above the slow link's delays: on a slow machine the
    # percolation must not time out (its hits would be unpublished). The grace longer than
    # a bulk request may take in all (forwarded, 30 s; percolated, 30 s; published, 5 s):
    # the requests in flight end in it, whatever the machine's pace.
    beater = start_beater(
        engine_url=slow.url,
        ESTROM_SHUTDOWN_GRACE="70",
        ESTROM_ENGINE_TIMEOUT="30",
        ESTROM_BULK_TIMEOUT="30",
    )
    engine_request(engine.url, "PUT", f"/{index}")
    sid = wamp.call("com.estrom.register_query", index, "kind:t")
    sink = wamp.subscribe(f"docs-for-{sid}")
    slow.delay(1.0)  # every chunk to and from the engine waits a second
    requests = [bulk_in_thread(beater.url, index, 5) for _ in range(2)]
    wait_until(lambda: in_flight(beater.url) == 2, what="two bulk requests in flight")

    code = beater.process.stop(timeout=EXIT_BOUND)
    for thread, _ in requests:
        thread.join(10)
    assert code == 0, "the beater did not exit by itself (it was SIGKILLed)"
    answers = [answer for _, got in requests for answer in got]
    assert [a.status for a in answers] == [200, 200]
    for answer in answers:
        assert [i["create"]["status"] for i in answer.json()["items"]] == [201] * 5
        assert "x-estrom-unpublished" not in answer.headers
    # Published before the beater left: the router has nothing more to come from it.
    hits = sink.wait_for_count(10)
    assert sorted(h["_source"]["n"] for h in hits) == sorted(list(range(5)) * 2)
    log = beater.process.log_path.read_text(errors="replace")
    assert "beater.drained" in log
    assert "beater.drain_timeout" not in log
    assert "Unhandled error" not in log


def test_sigterm_past_the_grace_answers_503_to_a_bulk_the_engine_does_not_answer(
    start_beater: StartService,
    engine: EngineHandle,
    wamp: WampClient,
    proxies: list[TCPProxy],
    index: str,
) -> None:
    wedged = proxy_to(proxies, engine.url)
    beater = start_beater(engine_url=wedged.url, ESTROM_SHUTDOWN_GRACE="1", ESTROM_BULK_TIMEOUT="60")
    wedged.hang()
    thread, answers = bulk_in_thread(beater.url, index, 3)
    wait_until(lambda: in_flight(beater.url) == 1, what="the bulk request in flight")

    code = beater.process.stop(timeout=EXIT_BOUND)
    thread.join(10)
    assert code == 0
    ((answer,),) = [answers]
    assert answer.status == 503
    body: dict[str, Any] = answer.json()
    assert body["error"] == "unavailable"
    assert "shutting down" in body["reason"]
    assert answer.headers["retry-after"]
    log = beater.process.log_path.read_text(errors="replace")
    assert "beater.drain_timeout" in log
    assert "Unhandled error" not in log
