"""``estrom readers add`` and ``estrom tail --token`` / ``ESTROM_TOKEN`` against a real rstack."""

from __future__ import annotations

import json
import os
import signal
import stat
import uuid

import pytest

from common.access.tokens import token_hash
from tests.cli.conftest import Cli
from tests.http_client import http
from tests.readers.stack import OPS, WRONG, ReadersStack
from tests.tailor.helpers import send
from tests.tailor.tail_client import docs_path
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_readers_add_prints_a_token_once_and_stores_its_hash(tmp_path) -> None:
    path = tmp_path / "readers.json"
    added = Cli(
        "readers", "add", "ci", "--targets", "logs-*", "metrics-*,-metrics-secret", "--file", str(path)
    )
    assert added.wait() == 0
    token = added.out_lines[0]
    document = json.loads(path.read_text())
    assert document["readers"] == [
        {"name": "ci", "token": token_hash(token), "targets": ["logs-*", "metrics-*,-metrics-secret"]}
    ]
    assert token not in path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = Cli("readers", "add", "ci", "--targets", "x", ESTROM_READERS=str(path))
    assert again.wait() == 1
    assert "exists already" in " ".join(again.err_lines)
    bad = Cli("readers", "add", "anonymous", "--targets", "x", "--file", str(path))
    assert bad.wait() == 1
    missing = Cli("readers", "add", "x", "--targets", "x")
    assert missing.wait() == 1
    assert "ESTROM_READERS" in " ".join(missing.err_lines)


def test_an_added_reader_tails_with_its_token(rstack: ReadersStack) -> None:
    index = f"cli-{uuid.uuid4().hex[:8]}"
    original = rstack.readers_path.read_text()
    try:
        added = Cli("readers", "add", "cli", "--targets", "cli-*", "--file", str(rstack.readers_path))
        assert added.wait() == 0
        token = added.out_lines[0]
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)
        probe = {"i": index, "q": "x", "timeout": "0.1"}
        wait_until(
            lambda: (
                http(
                    "GET", rstack.tailor.url + docs_path(probe), headers={"authorization": f"Bearer {token}"}
                ).status
                == 200
            ),
            20,
            "the tailor re-read the readers",
        )
        tail = Cli(
            "tail",
            "--tailor",
            rstack.tailor.url,
            "--token",
            token,
            "-i",
            index,
            "--json",
            "--limit",
            "1",
            "k:v",
        )
        tail.wait_err("following")
        by_env = Cli(
            "tail",
            "--tailor",
            rstack.tailor.url,
            "-i",
            index,
            "--json",
            "--limit",
            "1",
            "k:v",
            ESTROM_TOKEN=token,
        )
        by_env.wait_err("following")
        send(rstack.beater.url, index, [{"k": "v"}])
        assert tail.wait() == 0
        assert by_env.wait() == 0
        assert json.loads(tail.out_lines[0])["_source"] == {"k": "v"}
        refused = Cli("tail", "--tailor", rstack.tailor.url, "-i", index, "k:v")  # anonymous: public-* only
        assert refused.wait() == 1
        assert "403 not_authorized" in " ".join(refused.err_lines)
        wrong = Cli("tail", "--tailor", rstack.tailor.url, "--token", "nope-" + token, "-i", index, "k:v")
        assert wrong.wait() == 1
        assert "401 not_authorized" in " ".join(wrong.err_lines)
    finally:
        rstack.readers_path.write_text(original)
        os.kill(rstack.tailor.process.process.pid, signal.SIGHUP)


def test_counts_with_a_token_or_estrom_token(rstack: ReadersStack) -> None:
    """``estrom counts --token`` and ESTROM_TOKEN: ops (logs-*) counts; anonymous is 403, a wrong token 401."""
    index = f"logs-counts-{uuid.uuid4().hex[:8]}"
    tag = uuid.uuid4().hex
    base = ("counts", "--tailor", rstack.tailor.url, "-i", index, "--json")
    counts = Cli(*base, "--every", "0.3", "--token", OPS, f"tag:{tag}")
    by_env = Cli(*base, "--every", "0.3", f"tag:{tag}", ESTROM_TOKEN=OPS)
    try:
        counts.wait_err("counting")
        by_env.wait_err("counting")
        send(rstack.beater.url, index, [{"tag": tag}, {"tag": tag}])
        for running in (counts, by_env):
            totals = 0
            while totals < 2:
                totals += json.loads(running.line())["total"]
            assert totals == 2
    finally:
        counts.stop()
        by_env.stop()
    refused = Cli(*base, f"tag:{tag}")  # anonymous: public-* only
    assert refused.wait() == 1
    assert "403 not_authorized" in " ".join(refused.err_lines)
    wrong = Cli(*base, "--token", "nope-" + OPS, f"tag:{tag}")
    assert wrong.wait() == 1
    assert "401 not_authorized" in " ".join(wrong.err_lines)
    wrong_env = Cli(*base, f"tag:{tag}", ESTROM_TOKEN=WRONG)
    assert wrong_env.wait() == 1
    assert "401 not_authorized" in " ".join(wrong_env.err_lines)
