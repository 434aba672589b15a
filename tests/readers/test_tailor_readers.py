"""Readers at the tailor (real tailor, router, beater, engine): tokens, targets, tail quotas over HTTP."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from typing import Any

import pytest

from devstack.metrics_page import metric
from tests.http_client import engine_request, http
from tests.readers.stack import (
    LOGS,
    LOGS_APP,
    METRICS,
    OPS,
    PAY,
    PAYROLL,
    PUBLIC,
    SECRET_APP,
    TWO,
    WRONG,
    ReadersStack,
    readers_document,
    write_readers,
)
from tests.tailor.tail_client import Tail, docs_path
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

#: how each identity sends its token: none, a header, or ?token= (EventSource's way)
HOW = {
    "anonymous": ({}, {}),
    "ops": ({"authorization": f"Bearer {OPS}"}, {}),
    "two": ({}, {"token": TWO}),
    "pay": ({"authorization": f"Bearer {PAY}"}, {}),
}
ALLOWED = {
    "anonymous": {PUBLIC},
    "ops": {LOGS, LOGS_APP, SECRET_APP},
    "two": {LOGS_APP, METRICS},
    "pay": {PAYROLL},
}
TARGETS = (PUBLIC, LOGS, LOGS_APP, SECRET_APP, METRICS, PAYROLL)


def get(base: str, who: str, params: dict[str, Any]) -> Any:
    headers, extra = HOW[who]
    return http("GET", base + docs_path({**params, **extra}), headers=headers)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("who", list(HOW))
def test_tail_by_target(rstack: ReadersStack, who: str, target: str) -> None:
    resp = get(rstack.tailor.url, who, {"i": target, "q": "level:error", "timeout": "0.1"})
    if target in ALLOWED[who]:
        assert resp.status == 200, resp.body
        sid = resp.json()["subscription_id"]
        # The same query by its sid: readable by exactly the same identities.
        for other in HOW:
            by_sid = get(rstack.tailor.url, other, {"s": sid, "timeout": "0.1"})
            expected = 200 if target in ALLOWED[other] else 404
            assert by_sid.status == expected, (other, by_sid.body)
    else:
        assert resp.status == 403
        assert resp.json()["error"] == "not_authorized"


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {WRONG}"},
        {"authorization": "Basic b3BzOm9wcw=="},
        {"authorization": "Bearer"},
    ],
)
def test_a_wrong_token_is_401(rstack: ReadersStack, headers: dict[str, str]) -> None:
    resp = http(
        "GET", rstack.tailor.url + docs_path({"i": PUBLIC, "q": "x", "timeout": "0.1"}), headers=headers
    )
    assert resp.status == 401
    assert resp.json()["error"] == "not_authorized"
    assert resp.headers["www-authenticate"].startswith("Bearer")
    bad_query = http("GET", rstack.tailor.url + docs_path({"i": PUBLIC, "q": "x", "token": WRONG}))
    assert bad_query.status == 401


def test_payroll_backfill_only_for_its_reader(rstack: ReadersStack, engine: Any) -> None:
    """Issue 15's first finding: a document written straight into the engine, in an index estrom never ingested."""
    marker = uuid.uuid4().hex
    engine_request(
        engine.url,
        "POST",
        f"/{PAYROLL}/_doc?refresh=true",
        {"@timestamp": "2026-01-01T00:00:00Z", "m": marker},
    )
    params = {"i": PAYROLL, "q": f"m:{marker}", "n": "5", "limit": "1"}
    for who in ("anonymous", "ops", "two"):
        assert get(rstack.tailor.url, who, params).status == 403
    resp = get(rstack.tailor.url, "pay", params)
    assert resp.status == 200
    assert resp.json()["hits"][0]["_source"]["m"] == marker


def test_the_token_is_never_logged(rstack: ReadersStack) -> None:
    assert get(rstack.tailor.url, "two", {"i": METRICS, "q": "x", "timeout": "0.1"}).status == 200
    log = rstack.tailor.process.log_path.read_text()
    assert "http.access" in log  # the request was logged (debug level), without its token
    assert TWO not in log


def test_sighup_reloads_the_readers(rstack: ReadersStack) -> None:
    """Without an anonymous reader, no token is 401; with it back, 200 again: no restart."""
    params = {"i": PUBLIC, "q": "x", "timeout": "0.1"}
    document = readers_document()
    try:
        write_readers(rstack.readers_path, {"readers": document["readers"]})
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)
        wait_until(
            lambda: get(rstack.tailor.url, "anonymous", params).status == 401, 20, "reload without anonymous"
        )
    finally:
        write_readers(rstack.readers_path, document)
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)
    wait_until(lambda: get(rstack.tailor.url, "anonymous", params).status == 200, 20, "reload with anonymous")


def test_a_broken_file_keeps_the_readers_in_force(rstack: ReadersStack) -> None:
    document = readers_document()
    try:
        rstack.readers_path.write_text("{broken")
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)
        wait_until(
            lambda: "readers.reload_failed" in rstack.tailor.process.log_path.read_text(), 20, "the warning"
        )
        assert get(rstack.tailor.url, "ops", {"i": LOGS, "q": "x", "timeout": "0.1"}).status == 200
    finally:
        write_readers(rstack.readers_path, document)
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)


def test_concurrent_tails_per_identity(limited: ReadersStack) -> None:
    """ESTROM_QUOTA_TAILS=2: a third anonymous tail is 429 with Retry-After; ops is not held; closing frees one."""
    params = {"i": PUBLIC, "q": "level:tail"}
    first = Tail(limited.tailor.url, params)
    second = Tail(limited.tailor.url, params)
    try:
        assert (first.status, second.status) == (200, 200)
        third = http("GET", limited.tailor.url + docs_path(params))
        assert third.status == 429
        body = json.loads(third.body)
        assert (body["error"], body["limit"], body["value"]) == ("quota_exceeded", "ESTROM_QUOTA_TAILS", 2)
        assert int(third.headers["retry-after"]) >= 1
        ops = http(
            "GET",
            limited.tailor.url + docs_path({"i": LOGS, "q": "x", "timeout": "0.1"}),
            headers={"authorization": f"Bearer {OPS}"},
        )
        assert ops.status == 200
        # The largest users, in /metrics: this address holds its two tails.
        assert metric(limited.tailor.url, "estrom_tailor_reader_top_tails", key="anonymous@127.0.0.1") == 2
    finally:
        first.close()
    wait_until(
        lambda: http("GET", limited.tailor.url + docs_path({**params, "timeout": "0.1"})).status == 200,
        20,
        "a slot freed by the closed tail",
    )
    second.close()
    metrics = http("GET", limited.tailor.url + "/metrics").body.decode()
    assert 'estrom_tailor_reader_refusals_total{reason="ESTROM_QUOTA_TAILS"}' in metrics


COUNTS = "/api/v0.1/counts"


def count(base: str, who: str, params: dict[str, Any]) -> Any:
    headers, extra = HOW[who]
    return http("GET", base + docs_path({**params, **extra}, endpoint=COUNTS), headers=headers)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("who", list(HOW))
def test_counts_by_target(rstack: ReadersStack, who: str, target: str) -> None:
    resp = count(rstack.tailor.url, who, {"i": target, "q": "level:error", "every": "0.1", "timeout": "0.1"})
    if target in ALLOWED[who]:
        assert resp.status == 200, resp.body
        sid = json.loads(resp.body.splitlines()[0])["subscription_id"]
        for other in HOW:
            by_sid = count(rstack.tailor.url, other, {"s": sid, "every": "0.1", "timeout": "0.1"})
            assert by_sid.status == (200 if target in ALLOWED[other] else 404), (other, by_sid.body)
    else:
        assert resp.status == 403
        assert resp.json()["error"] == "not_authorized"


def test_payroll_counts_since_only_for_its_reader(rstack: ReadersStack, engine: Any) -> None:
    """``since=`` counts stored documents: the engine's payroll is counted for its reader only."""
    marker = uuid.uuid4().hex
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5))
    engine_request(engine.url, "POST", f"/{PAYROLL}/_doc?refresh=true", {"@timestamp": stamp, "m": marker})
    # A period far longer than the requests before it may take: the document stays in it.
    params = {"i": PAYROLL, "q": f"m:{marker}", "since": "10m", "every": "1", "timeout": "1"}
    for who in ("anonymous", "ops", "two"):
        assert count(rstack.tailor.url, who, params).status == 403
    resp = count(rstack.tailor.url, "pay", params)
    assert resp.status == 200
    frames = [json.loads(line) for line in resp.body.splitlines()[1:] if line.strip()]
    assert sum(f["total"] for f in frames if "total" in f) == 1
