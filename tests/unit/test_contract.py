"""The wire's names (common/contract.py); a condition that clears as a WAMP error (common/wamp.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from autobahn.wamp.exception import ApplicationError
from twisted.internet.defer import ensureDeferred

from common import contract
from common.contract import (
    ERRORS,
    NOT_AUTHORIZED,
    UNAVAILABLE,
    error_for_uri,
    is_sid,
    sid_of_topic,
    topic_for,
)
from common.engine import EngineUnavailable
from common.query.identity import sid_for
from common.wamp import procedure
from devstack.router import REPO

SID = "0123456789abcdef"


@pytest.mark.parametrize("sid", [SID, sid_for("logs-*", "level:error"), sid_for("a,b", {"match": {"x": 1}})])
def test_a_sid_is_sixteen_lowercase_hex_digits(sid: str) -> None:
    assert is_sid(sid)
    assert sid_of_topic(topic_for(sid)) == sid


@pytest.mark.parametrize(
    "text", ["", SID[:-1], SID + "0", SID.upper(), "0123456789abcdeg", SID + "\n", " " + SID, None, 1234]
)
def test_anything_else_is_not_a_sid(text: Any) -> None:
    assert not is_sid(text)
    if isinstance(text, str):
        assert sid_of_topic(topic_for(text)) is None


@pytest.mark.parametrize("uri", [SID, f"x.docs-for-{SID}", "docs-for-", f"docs-for-{SID}.x", "com.estrom.x"])
def test_only_a_hits_topic_has_a_sid(uri: str) -> None:
    assert sid_of_topic(uri) is None


def test_every_wamp_error_uri_is_estroms_and_leads_back_to_its_row() -> None:
    with_uri = [error for error in ERRORS if error.uri is not None]
    assert {error.uri for error in with_uri} == {
        "com.estrom.error.invalid_query",
        "com.estrom.error.invalid_index",
        "com.estrom.error.no_such_query",
        "com.estrom.error.not_authorized",
        "com.estrom.error.quota_exceeded",
        "com.estrom.error.unavailable",
    }
    for error in with_uri:
        found = error_for_uri(error.uri)  # type: ignore[arg-type]
        assert found is not None
        assert found.code == error.code
    assert error_for_uri(NOT_AUTHORIZED.uri) == NOT_AUTHORIZED  # type: ignore[arg-type]
    assert error_for_uri("wamp.error.not_authorized") is None
    assert error_for_uri(contract.WAMP_NO_SUCH_PROCEDURE) is None


def test_the_table_lists_every_error_the_module_names() -> None:
    named = {value for value in vars(contract).values() if isinstance(value, contract.WireError)}
    assert named == set(ERRORS)
    assert len(set(ERRORS)) == len(ERRORS)
    # One code, one status, but for the readers' not_authorized (401 no token, 403 not allowed).
    statuses: dict[str, set[int]] = {}
    for error in ERRORS:
        statuses.setdefault(error.code, set()).add(error.status)
    assert {code for code, seen in statuses.items() if len(seen) > 1} == {"not_authorized"}


def test_the_contract_is_standard_library_only() -> None:
    # The router worker imports it from crossbar's virtualenv (tests/unit/test_browser_authorizer.py).
    tree = ast.parse((REPO / "common" / "contract.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported <= {"__future__", "re", "typing"}


def _string_constants(path: Path) -> list[str]:
    """The string constants of a module's code (f-strings' literal parts too), docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_no_other_project_module_spells_a_wire_name() -> None:
    # The contract's URIs, topics and sid pattern are written once.
    offenders = [
        f"{path.relative_to(REPO)}: {text!r}"
        for top in ("beater", "common", "estrom_cli", "router/estrom_router", "tailor")
        for path in (REPO / top).rglob("*.py")
        if path.name != "contract.py"
        for text in _string_constants(path)
        if "com.estrom." in text or text.startswith(("docs-for-", "estrom.router.")) or "{16}" in text
    ]
    assert offenders == []


# --- a condition that clears, over WAMP (over HTTP: tests/memory/test_retry_later.py) ---


def _failure_of(coroutine: Any) -> BaseException:
    d = ensureDeferred(coroutine)
    failures: list[Any] = []
    d.addErrback(failures.append)
    assert len(failures) == 1
    return failures[0].value


def test_a_procedure_raises_unavailable_for_a_condition_that_clears() -> None:
    async def register(index: str, details: Any = None) -> str:
        raise EngineUnavailable(f"engine did not answer for {index}")

    exc = _failure_of(procedure(register)("logs", details=None))
    assert isinstance(exc, ApplicationError)
    assert (exc.error, exc.args, exc.kwargs) == (UNAVAILABLE.uri, ("engine did not answer for logs",), {})
    assert procedure(register).__name__ == "register"


def test_a_procedure_passes_its_other_errors_and_answers_unchanged() -> None:
    async def refuse() -> str:
        raise ApplicationError(contract.INVALID_QUERY.uri, "no", limit="x")

    exc = _failure_of(procedure(refuse)())
    assert isinstance(exc, ApplicationError)
    assert (exc.error, exc.kwargs) == (contract.INVALID_QUERY.uri, {"limit": "x"})

    async def answer() -> str:
        return SID

    results: list[str] = []
    ensureDeferred(procedure(answer)()).addCallback(results.append)
    assert results == [SID]


def test_the_contract_has_no_second_home() -> None:
    # common/names.py stood in for the contract while the tailor moved to it; nothing brings it back.
    assert not (REPO / "common" / "names.py").exists()
    users = [
        str(path.relative_to(REPO))
        for top in ("beater", "common", "estrom_cli", "router", "devstack", "tailor", "tests")
        for path in (REPO / top).rglob("*.py")
        if path != Path(__file__).resolve()
        and ("common.names" in path.read_text() or "from common import names" in path.read_text())
    ]
    assert users == []
