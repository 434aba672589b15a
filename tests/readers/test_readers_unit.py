"""The readers file, tokens and "may this identity use this target" (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.access.access_file import ReadersHolder, load_readers, parse_readers, readers_for
from common.access.errors import ReadersError
from common.access.exposure import listen_interface
from common.access.readers import ANONYMOUS, may_read
from common.access.scopes import (
    Scope,
    pattern_contains,
    pattern_matches,
    patterns_disjoint,
    scope_of,
    target_within,
)
from common.access.tokens import bearer_token, token_hash

OPS_TOKEN = "ops-token-0123456789abcdef"
TWO_TOKEN = "two-token-0123456789abcdef"

FILE = {
    "readers": [
        {"name": "ops", "token": OPS_TOKEN, "targets": ["logs-*"]},
        {
            "name": "two",
            "token": token_hash(TWO_TOKEN),
            "targets": ["logs-app-*,-logs-app-secret", "metrics-*"],
        },
        {"name": "pay", "token": "pay-token-0123456789abcdef", "targets": ["payroll"]},
    ],
    "anonymous": {"targets": ["public-*"]},
}


def readers():
    return parse_readers(FILE)


def test_the_scope_of_a_target_comes_from_the_stores_parser():
    assert scope_of("logs-*,-logs-debug-*,a") == Scope(("logs-*", "a"), ("logs-debug-*",), ())
    assert scope_of("logs-*,-logs-debug-*") == Scope(("logs-*",), ("logs-debug-*",), ("logs-debug-*",))
    # Runs, as the store reads them: only the exclusions after the last inclusion are final.
    assert scope_of("a*,-a1*,a1x*,-a1xy") == Scope(("a*", "a1x*"), ("a1*", "a1xy"), ("a1xy",))
    assert scope_of("b,a,a") == Scope(("a", "b"))


@pytest.mark.parametrize("text", ["", "logs-*,,a", " logs-*", "-logs-*", "Logs", "logs-?", "a,-b", ".kibana"])
def test_a_target_the_store_refuses_is_refused_to_everyone(text):
    from common.query.targets import target_problem

    assert target_problem(text) is not None
    assert not may_read(parse_readers(FILE | {"anonymous": {"targets": ["*"]}}).authenticate(None), text)


def test_the_readers_file_names_valid_targets():
    with pytest.raises(ReadersError, match=r"target 'logs-\?' is not a read target: index patterns support"):
        parse_readers({"readers": [{"name": "a", "token": OPS_TOKEN, "targets": ["logs-?"]}]})


@pytest.mark.parametrize(
    ("pattern", "name", "ok"),
    [
        ("logs-*", "logs-a", True),
        ("logs-*", "logs-", True),
        ("logs-*", "log", False),
        ("a?c", "abc", True),
        ("*-x-*", "a-x-b", True),
        ("*-x-*", "a-y-b", False),
        ("payroll", "payroll", True),
    ],
)
def test_pattern_matches(pattern, name, ok):
    assert pattern_matches(pattern, name) is ok


@pytest.mark.parametrize(
    ("outer", "inner", "ok"),
    [
        ("*", "logs-*", True),
        ("logs-*", "logs-app-*", True),
        ("logs-*", "*", False),
        ("logs-*", "log*", False),
        ("logs-*", "logs-a", True),
        ("logs-*-x", "logs-*-x", True),
        ("logs-*", "logs-?", True),
        ("logs-?", "logs-*", False),
        ("l*s-*", "logs-*", True),
        ("logs-a", "logs-*", False),
    ],
)
def test_pattern_contains(outer, inner, ok):
    assert pattern_contains(outer, inner) is ok


names = st.text(alphabet="ab-", max_size=6)
patterns = st.text(alphabet="ab-*?", max_size=6)


@given(patterns, patterns, names)
def test_containment_is_sound(outer, inner, name):
    """Whenever containment is claimed, every name the inner pattern matches the outer matches too."""
    if pattern_contains(outer, inner) and pattern_matches(inner, name):
        assert pattern_matches(outer, name)


@given(patterns, patterns, names)
def test_disjointness_is_sound(a, b, name):
    if patterns_disjoint(a, b):
        assert not (pattern_matches(a, name) and pattern_matches(b, name))


def test_targets_inside_partly_outside_outside():
    ops = readers().identity("ops")
    assert may_read(ops, "logs-app")
    assert may_read(ops, "logs-*,-logs-debug-*")
    assert may_read(ops, "logs-a,logs-b")
    assert not may_read(ops, "logs-a,payroll")  # partly outside
    assert not may_read(ops, "*")  # could cover more than logs-*
    assert not may_read(ops, "payroll")
    assert not may_read(ops, "")


def test_two_lists_and_an_exclusion():
    two = readers().identity("two")
    assert may_read(two, "metrics-cpu")
    assert may_read(two, "logs-app-web,metrics-*")
    assert not may_read(two, "logs-app-secret")
    assert not may_read(two, "logs-app-*")  # would cover logs-app-secret
    assert may_read(two, "logs-app-*,-logs-app-secret")  # excluded by the target itself
    assert not may_read(two, "logs-other")
    # A later inclusion adds back what an earlier exclusion removed (the engine reads left to right).
    assert not may_read(two, f"logs-app-*,-{'logs-app-secret'},logs-app-secret*")
    assert not may_read(two, "logs-app-*,-logs-app-secret,logs-app-s*")


def test_dot_indices_are_never_readable():
    r = parse_readers({"readers": [{"name": "all", "token": OPS_TOKEN, "targets": ["*"]}]})
    everything = r.identity("all")
    assert may_read(everything, "logs-a")
    assert not may_read(everything, ".security")
    assert not may_read(everything, "*")  # could cover .security
    assert not may_read(everything, "*,-.*")  # not a target the store accepts ('.' patterns)
    assert not target_within(Scope((".kibana",)), (Scope(("*",)),))
    assert target_within(Scope(("*",), (".*",), (".*",)), (Scope(("*",)),))


def test_open_default_reads_everything_but_dot_indices():
    from common.access.readers import Readers

    anon = Readers.open_default().authenticate(None)
    assert anon is not None
    assert anon.anonymous
    assert may_read(anon, "payroll")
    assert not may_read(anon, ".tasks")


def test_tokens_in_clear_or_hashed_and_wrong_ones():
    r = readers()
    ops = r.authenticate(OPS_TOKEN)
    assert ops is not None
    assert ops.name == "ops"
    two = r.authenticate(TWO_TOKEN)
    assert two is not None
    assert two.name == "two"
    assert r.authenticate("wrong-token-0123456789") is None
    assert r.authenticate(token_hash(TWO_TOKEN)) is None  # the hash is not the token
    anon = r.authenticate(None)
    assert anon is not None
    assert anon.name == ANONYMOUS


def test_no_anonymous_reader_when_absent():
    r = parse_readers({"readers": FILE["readers"]})
    assert r.authenticate(None) is None
    assert r.authenticate("") is None


@pytest.mark.parametrize(
    ("document", "says"),
    [
        ([], "JSON object"),
        ({"readers": {}}, "must be a list"),
        ({"readers": [{"name": "a", "token": "short", "targets": ["x"]}]}, "too short"),
        ({"readers": [{"name": "a", "token": "sha256:abc", "targets": ["x"]}]}, "64 hex"),
        ({"readers": [{"name": "a", "token": OPS_TOKEN, "targets": "x"}]}, "list of non-empty"),
        ({"readers": [{"name": ANONYMOUS, "token": OPS_TOKEN, "targets": ["x"]}]}, "other than"),
        ({"readers": [{"name": "a", "token": OPS_TOKEN, "targets": ["x"]}] * 2}, "twice"),
        (
            {
                "readers": [
                    {"name": "a", "token": OPS_TOKEN, "targets": ["x"]},
                    {"name": "b", "token": OPS_TOKEN, "targets": ["x"]},
                ]
            },
            "same token",
        ),
        ({"anonymous": {"targets": []}} | {"extra": 1}, "unknown keys"),
        ({"anonymous": []}, "'anonymous' must be"),
    ],
)
def test_bad_files_say_why(document, says):
    with pytest.raises(ReadersError, match=says):
        parse_readers(document)


def test_load_and_reload(tmp_path: Path):
    path = tmp_path / "readers.json"
    path.write_text(json.dumps(FILE))
    holder = ReadersHolder(load_readers(path), str(path))
    assert holder.readers.identity("ops") is not None
    path.write_text(json.dumps({"readers": [FILE["readers"][0] | {"targets": ["other-*"]}]}))
    assert holder.reload() is None
    ops = holder.readers.identity("ops")
    assert ops is not None
    assert may_read(ops, "other-a")
    assert not may_read(ops, "logs-a")
    path.write_text("{not json")
    assert "not JSON" in (holder.reload() or "")
    assert holder.readers.identity("ops") is not None  # kept as it was
    with pytest.raises(ReadersError, match="cannot read"):
        load_readers(tmp_path / "missing.json")


def test_start_up_fails_closed():
    loopback = ["127.0.0.1"]
    assert readers_for({}, loopback, "tailor").anonymous is not None
    assert readers_for({}, ["::1", "localhost"], "tailor").anonymous is not None
    with pytest.raises(ReadersError, match="not loopback"):
        readers_for({}, ["0.0.0.0"], "tailor")
    with pytest.raises(ReadersError, match="every interface"):
        readers_for({}, [""], "router")
    assert readers_for({"ESTROM_ANONYMOUS_READS": "all"}, ["0.0.0.0"], "tailor").anonymous is not None
    with pytest.raises(ReadersError, match="'all' or unset"):
        readers_for({"ESTROM_ANONYMOUS_READS": "yes"}, loopback, "tailor")


def test_listen_interface():
    assert listen_interface("tcp:8082:interface=127.0.0.1") == "127.0.0.1"
    assert listen_interface("tcp:8082") == ""
    assert listen_interface("tcp6:8082:interface=\\:\\:1") == "::1"


def test_bearer_token():
    assert bearer_token("Bearer abc", None) == "abc"
    assert bearer_token(None, "q") == "q"
    assert bearer_token(None, None) is None
    assert bearer_token("Basic abc", None) not in (None, "")  # a bad token, never anonymous
