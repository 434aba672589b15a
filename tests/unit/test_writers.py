"""Writers: credentials, the start-up policy, and what a writer may write (common/access/writers.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from beater.bulk.screen import rewritten_answer, scan, screen, without_source_params
from beater.writers.aliases import write_indices
from common.access.errors import ReadersError
from common.access.scopes import scope_of
from common.access.tokens import Credential, presented, token_hash
from common.access.writers import (
    INGEST_TOKEN_WRITER,
    WriterIdentity,
    date_math_pattern,
    parse_writers,
    write_refusal,
    writers_for,
)

TOKEN = "a-writer-token-0123456789"
SHIPPER = WriterIdentity("shipper", (scope_of("logs-*"),))
OWN = "estrom-queries-"


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_credentials_of_each_scheme() -> None:
    assert presented(None) is None
    assert presented(b"  ") is None
    assert presented(b"Bearer " + TOKEN.encode()) == Credential(TOKEN)
    assert presented(b"Basic " + b64(f"shipper:{TOKEN}")) == Credential(TOKEN, "shipper")
    assert presented(b"ApiKey " + b64(f"shipper:{TOKEN}")) == Credential(TOKEN, "shipper")
    # Present but not understood: a credential that matches nobody, never anonymous.
    for header in (b"Basic !!", b"Basic " + b64("no-colon"), b"Digest x", b"Bearer"):
        cred = presented(header)
        assert cred is not None
        assert cred.token.startswith("\0")


def test_authenticate_checks_the_name_given_with_the_token() -> None:
    writers = parse_writers(
        {"writers": [{"name": "shipper", "token": token_hash(TOKEN), "targets": ["logs-*"]}]}
    )
    assert writers.authenticate(Credential(TOKEN)) == WriterIdentity("shipper", (scope_of("logs-*"),))
    assert writers.authenticate(Credential(TOKEN, "shipper")) is not None
    assert writers.authenticate(Credential(TOKEN, "someone-else")) is None
    assert writers.authenticate(Credential("wrong-token-0123456789")) is None
    assert writers.authenticate(None) is None  # no anonymous writer in the file


def test_the_ingest_token_is_a_writer_of_everything_but_own_and_hidden() -> None:
    writers = parse_writers(None, ingest_token="s3cret")
    identity = writers.authenticate(Credential("s3cret"))
    assert identity is not None
    assert identity.name == INGEST_TOKEN_WRITER
    assert write_refusal(identity, "anything-at-all", OWN) is None
    assert write_refusal(identity, "estrom-queries-_shared-0", OWN) is not None
    assert write_refusal(identity, ".security", OWN) is not None


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("logs-app", True),
        ("logs-*", True),
        ("logs-app-*", True),
        ("<logs-{now/d}-000001>", True),
        ("<logs-{now/d{yyyy.MM.dd|+12:00}}>", True),
        ("payroll", False),
        ("*", False),
        ("log*", False),
        ("logs-a,payroll", False),
        (".logs-x", False),
        ("<payroll-{now/d}>", False),
    ],
)
def test_what_a_writer_of_logs_star_may_write(name: str, allowed: bool) -> None:
    assert (write_refusal(SHIPPER, name, OWN) is None) is allowed


def test_estroms_own_indices_are_nobodys_even_for_a_writer_of_star() -> None:
    everything = WriterIdentity("all", (scope_of("*"),))
    for name in ("estrom-queries-_shared-0", "estrom-*", "estrom-queries-*", "<estrom-queries-{now/d}>"):
        assert write_refusal(everything, name, OWN) is not None, name
    assert write_refusal(everything, "estrom-other", OWN) is None


def test_date_math_pattern() -> None:
    assert date_math_pattern("<filebeat-7.17.28-{now/d}-000001>") == "filebeat-7.17.28-*-000001"
    assert date_math_pattern("plain") == "plain"


def test_writers_for_fails_closed_beyond_loopback(tmp_path: Path) -> None:
    assert writers_for({}, ["127.0.0.1"]).anonymous is not None
    with pytest.raises(ReadersError, match="no writer"):
        writers_for({}, [""])
    assert writers_for({"ESTROM_ANONYMOUS_WRITES": "all"}, ["0.0.0.0"]).anonymous is not None
    token_only = writers_for({}, ["0.0.0.0"], ingest_token="s3cret")
    assert token_only.anonymous is None
    # A readers-only access file names no writer: the same policy as no file.
    readers_only = tmp_path / "access.json"
    readers_only.write_text(json.dumps({"anonymous": {"targets": ["public-*"]}}))
    with pytest.raises(ReadersError):
        writers_for({"ESTROM_READERS": str(readers_only)}, ["0.0.0.0"])


@pytest.mark.parametrize(
    "document",
    [
        {"writers": {}},
        {"writers": [{"name": "anonymous", "token": TOKEN, "targets": ["a"]}]},
        {"writers": [{"name": "a:b", "token": TOKEN, "targets": ["a"]}]},
        {"writers": [{"name": "w", "token": "short", "targets": ["a"]}]},
        {"writers": [{"name": "w", "token": TOKEN, "targets": []}]},
        {"anonymous_writer": {"targets": "logs-*"}},
    ],
)
def test_bad_writer_entries_say_what_is_wrong(document: dict) -> None:
    with pytest.raises(ReadersError):
        parse_writers(document, "access.json")


# --- the bulk screen ---------------------------------------------------------------------------


def spool(lines: list[dict]) -> object:
    import io

    return io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())


def test_screen_leaves_an_allowed_body_untouched() -> None:
    body = spool([{"index": {"_index": "logs-a"}}, {"k": 1}, {"delete": {"_index": "logs-a", "_id": "1"}}])
    scanned = scan(body, None)  # type: ignore[arg-type]
    assert scanned.names == ["logs-a"]
    screened = screen(body, scanned, {})  # type: ignore[arg-type]
    assert screened.body is body
    assert not screened.rewritten
    assert screened.actions == 2


def test_screen_takes_refused_items_out_and_merges_them_back() -> None:
    body = spool(
        [
            {"index": {"_index": "logs-a", "_id": "1"}},
            {"k": 1},
            {"delete": {"_index": "payroll", "_id": "2"}},
            {"update": {"_id": "3"}},
            {"doc": {"k": 3}, "_source": True},
        ]
    )
    scanned = scan(body, "logs-b")  # type: ignore[arg-type]
    assert scanned.names == ["logs-a", "payroll", "logs-b"]
    screened = screen(body, scanned, {"payroll": "no"})  # type: ignore[arg-type]
    forwarded = screened.body.read().decode().splitlines()
    assert [json.loads(line) for line in forwarded] == [
        {"index": {"_index": "logs-a", "_id": "1"}},
        {"k": 1},
        {"update": {"_id": "3", "_source": True}},  # estrom's ask, for publishing; the shipper's is gone
        {"doc": {"k": 3}},
    ]
    engine = (
        b'{"took": 3, "errors": false, "items": [{"index": {"status": 201}},'
        b' {"update": {"status": 200, "get": {"_source": {"k": 3, "secret": 1}}}}]}'
    )
    import io

    merged = json.load(rewritten_answer(io.BytesIO(engine), screened.refused, screened.actions))
    assert merged["took"] == 3
    assert merged["errors"] is True
    assert [next(iter(i)) for i in merged["items"]] == ["index", "delete", "update"]
    assert merged["items"][1]["delete"]["status"] == 403
    assert merged["items"][2] == {"update": {"status": 200}}  # the stored document is never answered


def test_update_source_parameters_are_dropped_from_the_url() -> None:
    assert without_source_params(b"/_bulk?_source=true&refresh=wait_for") == b"/_bulk?refresh=wait_for"
    assert without_source_params(b"/x/_bulk?_source_includes=a") == b"/x/_bulk"
    assert without_source_params(b"/_bulk") == b"/_bulk"


def test_where_writes_through_an_alias_land() -> None:
    answer = {
        "payroll-1": {"aliases": {"logs-current": {"is_write_index": True}, "everything": {}}},
        "logs-a": {"aliases": {"logs-current": {}, "everything": {}}},
        "solo": {"aliases": {"one": {}}},
    }
    assert write_indices(answer) == {
        "logs-current": "payroll-1",
        "everything": "logs-a,payroll-1",
        "one": "solo",
    }
    assert write_indices({"error": "alias [x] missing", "status": 404}) == {}
