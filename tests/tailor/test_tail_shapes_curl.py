"""``fields=``, ``delay=`` and ``max_rate=`` as ``curl -N`` sees them: the client the README shows.

curl knows nothing of estrom: it prints the NDJSON lines as they come. Each
test waits for the stream's opening line (written once the tail is
subscribed) before it sends, and then for the lines it expects, each wait
bounded.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import urllib.parse
from typing import Any

import pytest

from tests.tailor.helpers import marker, send

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


class Curl:
    """``curl -sN <url>``, its stdout read line by line on a thread."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(["curl", "-sN", url], stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = 30.0) -> Any:
        """The next non-empty line as JSON (heartbeats are empty lines); None once curl ended."""
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                return None
            if line.strip():
                return json.loads(line)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def tail(tailor_url: str, **params: Any) -> Curl:
    return Curl(f"{tailor_url}/api/v0.1/docs?{urllib.parse.urlencode(params)}")


def test_curl_gets_only_the_fields_asked_for_in_timestamp_order(tailor, beater, index):
    tag = marker()
    curl = tail(tailor.url, i=index, q=f"tag:{tag}", fields="n", delay="2s", format="ndjson", limit=4)
    try:
        assert "subscription_id" in curl.next()
        stamps = {n: f"2024-01-01T00:00:0{n}Z" for n in (1, 2, 3, 4)}
        send(beater.url, index, [{"tag": tag, "n": n, "@timestamp": stamps[n]} for n in (3, 1, 4, 2)])
        hits = [curl.next() for _ in range(4)]
        assert curl.next() is None  # limit=4: the tailor ends the stream, curl exits
    finally:
        curl.close()
    assert [h["_source"] for h in hits] == [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}]
    assert all(h["_index"] == index for h in hits)


def test_curl_sees_each_sampled_second_and_the_numbers_add_up(tailor, beater, index):
    tag = marker()
    curl = tail(tailor.url, i=index, q=f"tag:{tag}", max_rate=1, format="ndjson")
    try:
        assert "subscription_id" in curl.next()
        send(beater.url, index, [{"tag": tag, "n": n} for n in range(30)])
        hits, reports = [], []

        def accounted() -> int:
            """Documents in a reported second, plus hits sent in seconds that left none out."""
            return sum(r["matched"] for r in reports) + len(hits) - sum(r["sent"] for r in reports)

        while accounted() < 30:
            line = curl.next()
            assert line is not None, "curl ended before every document was accounted for"
            (reports if "sampled" in line else hits).append(line.get("sampled", line))
    finally:
        curl.close()
    assert reports, "30 hits at once are over a max_rate of 1"
    assert accounted() == 30
    assert all(r["sent"] <= 1 < r["matched"] for r in reports)
    assert {h["_source"]["tag"] for h in hits} == {tag}
