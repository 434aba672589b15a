"""``estrom tail --fields / --delay / --order-by / --max-rate`` against a real tailor.

Each tail goes through ``Front``, which records the query string of every
request and forwards it to the session's tailor: a test first checks what the
command asked for, then what the tailor sent back. (Should the tailor not
shape yet, the first half passes and the second fails: the failure is the
server's.) The last tests serve a canned stream instead, to pin how the
command prints late hits and sampled seconds whatever the tailor does.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.real_stack import ServiceHandle
from tests.tailor.helpers import send

pytestmark = pytest.mark.integration


class Front:
    """An HTTP front on a free port: records each request's query, then forwards it to ``upstream``
    (streaming the answer as it comes) or answers ``canned`` (a JSON tail body)."""

    def __init__(self, upstream: str | None = None, canned: bytes | None = None) -> None:
        self.asked: list[dict[str, str]] = []
        target = urllib.parse.urlsplit(upstream) if upstream else None
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection does

            def do_GET(self) -> None:
                front.asked.append(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)))
                if target is None:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(canned or b"")
                    return
                conn = http.client.HTTPConnection(target.hostname or "", target.port, timeout=120)
                conn.request("GET", self.path, headers={"Accept": self.headers.get("Accept", "*/*")})
                answer = conn.getresponse()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", ""))
                self.end_headers()
                try:
                    while chunk := answer.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # the command went away (killed at the end of its test)
                finally:
                    conn.close()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def front(tailor: ServiceHandle) -> Iterator[Front]:
    """The session's tailor behind a Front."""
    f = Front(upstream=tailor.url)
    yield f
    f.close()


def _at(second: int) -> str:
    return f"2026-11-27T10:00:{second:02d}Z"


def test_fields_go_on_the_wire_and_only_they_arrive(cli, front, beater, index):
    tail = cli(
        "tail", "--tailor", front.url, "-i", index, "--json", "--fields", "host.name,n", "--limit", "1", "n:7"
    )
    tail.wait_err("following")
    assert front.asked[-1]["fields"] == "host.name,n"  # with --json: exactly the chosen fields
    doc = {"@timestamp": _at(1), "n": 7, "host": {"name": "web-1", "ip": "10.0.0.1"}, "message": "slow"}
    send(beater.url, index, [doc])
    assert tail.wait() == 0
    assert [json.loads(line) for line in tail.out_lines] == [
        {"_index": index, "_source": {"n": 7, "host": {"name": "web-1"}}}
    ]


def test_fields_as_columns_ask_for_what_a_line_shows(cli, front, beater, index):
    tail = cli("tail", "--tailor", front.url, "-i", index, "--fields", "host.*", "--limit", "1", "n:8")
    tail.wait_err("following")
    # A line shows the time and the message besides the columns: the tailor is asked for those too.
    assert front.asked[-1]["fields"] == "host.*,@timestamp,message"
    doc = {"@timestamp": _at(2), "n": 8, "host": {"name": "web-2", "ip": "10.0.0.2"}, "message": "slow"}
    send(beater.url, index, [doc])
    assert tail.wait() == 0
    assert tail.out_lines == [f"{_at(2)}  host.name=web-2  host.ip=10.0.0.2  slow"]


def test_delay_prints_out_of_order_ingests_in_timestamp_order_and_marks_late_ones(cli, front, beater, index):
    tail = cli("tail", "--tailor", front.url, "-i", index, "--delay", "3s", "kind:late")
    tail.wait_err("following")
    assert front.asked[-1]["delay"] == "3s"
    assert "order_by" not in front.asked[-1]
    # One batch, ingested out of @timestamp order: held together, printed in order.
    send(beater.url, index, [{"@timestamp": _at(s), "kind": "late", "message": f"m{s}"} for s in (3, 1, 2)])
    assert [tail.line() for _ in range(3)] == [f"{_at(s)}  kind=late  m{s}" for s in (1, 2, 3)]
    # Older than a hit already printed: still printed, marked.
    send(beater.url, index, [{"@timestamp": _at(0), "kind": "late", "message": "m0"}])
    assert tail.line() == f"{_at(0)}  late  kind=late  m0"


def test_order_by_another_field_and_late_in_json(cli, front, beater, index):
    tail = cli(
        "tail", "--tailor", front.url, "-i", index, "--json", "--delay", "3s", "--order-by", "seq", "kind:seq"
    )
    tail.wait_err("following")
    assert (front.asked[-1]["delay"], front.asked[-1]["order_by"]) == ("3s", "seq")
    # @timestamp says the opposite of seq: seq orders.
    send(beater.url, index, [{"@timestamp": _at(9 - s), "kind": "seq", "seq": s} for s in (2, 3, 1)])
    hits = [json.loads(tail.line()) for _ in range(3)]
    assert [h["_source"]["seq"] for h in hits] == [1, 2, 3]
    assert not any(h.get("_late") for h in hits)
    send(beater.url, index, [{"@timestamp": _at(30), "kind": "seq", "seq": 0}])
    late = json.loads(tail.line())
    assert (late["_source"]["seq"], late.get("_late")) == (0, True)


MAX_RATE = 5
#: ingested in one batch: far above MAX_RATE in whichever second(s) the tailor receives them
BURST = 200


def _burst(beater: ServiceHandle, index: str) -> None:
    # One @timestamp for all: in one second whether the tailor counts seconds by it or by arrival.
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    send(beater.url, index, [{"@timestamp": now, "kind": "burst", "n": n} for n in range(BURST)])


def test_max_rate_samples_and_the_numbers_add_up(cli, front, beater, index):
    as_json = cli(
        "tail", "--tailor", front.url, "-i", index, "--json", "--max-rate", str(MAX_RATE), "kind:burst"
    )
    as_json.wait_err("following")
    as_lines = cli("tail", "--tailor", front.url, "-i", index, "--max-rate", str(MAX_RATE), "kind:burst")
    as_lines.wait_err("following")
    assert [a["max_rate"] for a in front.asked] == [str(MAX_RATE)] * 2
    _burst(beater, index)

    # Every hit of the burst is accounted for: printed, or counted out by a sampled second.
    printed: list[dict[str, Any]] = []
    sampled: list[dict[str, Any]] = []
    while len(printed) + sum(s["matched"] - s["sent"] for s in sampled) < BURST:
        item = json.loads(as_json.line())
        if "_source" in item:
            printed.append(item)
        else:
            assert set(item) == {"sampled"}, item
            sampled.append(item["sampled"])
    assert len(printed) + sum(s["matched"] - s["sent"] for s in sampled) == BURST
    # A second above max_rate leaves hits out, so it is reported; any reported second sent at most
    # max_rate and left out at least one (a burst's small tail may be sampled down too).
    assert any(s["matched"] > MAX_RATE for s in sampled), sampled
    for second in sampled:
        assert 0 <= second["sent"] <= MAX_RATE, second
        assert second["sent"] < second["matched"], second
        assert datetime.fromisoformat(second["t"].replace("Z", "+00:00")).microsecond == 0
    assert len({h["_source"]["n"] for h in printed}) == len(printed)  # none twice

    # Printed as lines, a sampled second is a status line on stderr; stdout keeps only hits.
    status = as_lines.wait_err("sampled:")
    found = re.fullmatch(r"sampled: (\d+) of (\d+) in (\S+)", status)
    assert found, status
    sent, matched = int(found[1]), int(found[2])
    assert sent <= MAX_RATE
    assert sent < matched
    assert "kind=burst" in as_lines.line()


def test_shaping_options_are_checked_before_asking(cli):
    for args, reason in (
        (["--order-by", "seq"], "--order-by orders the hits --delay holds"),
        (["--max-rate", "0"], "--max-rate must be at least 1"),
    ):
        tail = cli("tail", "--tailor", "http://127.0.0.1:1", "-i", "logs", *args, "x")
        assert tail.wait() == 2
        assert any(reason in line for line in tail.err_lines), tail.err_lines


def test_the_tailors_refusal_of_a_delay_is_shown(cli, tailor, index):
    tail = cli("tail", "--tailor", tailor.url, "-i", index, "--delay", "1h", "x")
    assert tail.wait() == 1
    assert tail.err_lines[0].startswith("estrom: the tailor refused the tail: 400")
    assert "delay" in tail.err_lines[0]


CANNED_HITS = [
    {"_index": "logs", "_source": {"@timestamp": _at(5), "kind": "x", "message": "five"}},
    {"sampled": {"t": "2026-11-27T10:00:05Z", "matched": 12, "sent": 5}},
    {"_index": "logs", "_source": {"@timestamp": _at(4), "kind": "x", "message": "four"}, "_late": True},
]


@pytest.fixture
def canned() -> Iterator[Front]:
    """A tailor stand-in answering one finished JSON tail: a hit, a sampled second, a late hit."""
    body = {"subscription_id": "0123456789abcdef", "hits": CANNED_HITS}
    f = Front(canned=json.dumps(body).encode())
    yield f
    f.close()


def test_a_late_hit_is_marked_and_a_sampled_second_is_a_status_line(cli, canned):
    tail = cli("tail", "--tailor", canned.url, "-i", "logs", "--max-rate", "5", "--delay", "2s", "kind:x")
    assert tail.wait() == 0
    assert canned.asked == [{"i": "logs", "q": "kind:x", "delay": "2s", "max_rate": "5"}]
    assert tail.out_lines == [f"{_at(5)}  kind=x  five", f"{_at(4)}  late  kind=x  four"]
    assert "sampled: 5 of 12 in 2026-11-27T10:00:05Z" in tail.err_lines


def test_json_passes_late_hits_and_sampled_seconds_through(cli, canned):
    tail = cli("tail", "--tailor", canned.url, "-i", "logs", "--json", "--max-rate", "5", "kind:x")
    assert tail.wait() == 0
    assert [json.loads(line) for line in tail.out_lines] == CANNED_HITS
    assert not any("sampled" in line for line in tail.err_lines)
