"""Read targets: validation, canonical form, coverage by name, template overlap."""

from __future__ import annotations

import pytest

from common.query.identity import sid_for
from common.query.targets import (
    InvalidTarget,
    canonical_target,
    globs_overlap,
    parse_target,
    percolator_suffix,
    target_problem,
)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("b,a", "a,b"),
        ("a,b,a", "a,b"),
        ("logs-*,svc-a,logs-*", "logs-*,svc-a"),
        ("x-*,y-*,-x-debug,-y-debug", "y-*,x-*,-y-debug,-x-debug"),
        ("x-*,-x-b,-x-a,-x-a", "x-*,-x-a,-x-b"),
    ],
)
def test_permutations_and_duplicates_are_one_target_and_one_sid(a: str, b: str) -> None:
    assert canonical_target(a) == canonical_target(b)
    assert sid_for(canonical_target(a), "level:error") == sid_for(canonical_target(b), "level:error")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("logs-*", "logs-2026.*"),
        # Order of exclusions matters: a1x* is added back in the first, excluded in the second.
        ("a*,-a1*,a1x*", "a*,a1x*,-a1*"),
        ("a", "a,b"),
    ],
)
def test_different_targets_never_share_a_sid(a: str, b: str) -> None:
    assert canonical_target(a) != canonical_target(b)
    assert sid_for(canonical_target(a), "x") != sid_for(canonical_target(b), "x")


def test_a_concrete_index_is_its_own_canonical_target_so_sids_stay_as_they_were() -> None:
    assert canonical_target("events") == "events"
    assert percolator_suffix(parse_target("events")) == "events"


def test_other_targets_get_an_engine_legal_percolator_name_no_index_can_have() -> None:
    suffix = percolator_suffix(parse_target("logs-*,-logs-debug-*"))
    assert suffix.startswith("_t")
    assert len(suffix) == 18
    assert suffix == suffix.lower()
    assert suffix == percolator_suffix(parse_target("logs-*,-logs-debug-*"))
    assert suffix != percolator_suffix(parse_target("logs-*"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must not be empty"),
        ("a,,b", "empty segment"),
        ("a,", "empty segment"),
        (",a", "empty segment"),
        ("-logs-*", "only exclusions"),
        ("-a,-b", "only exclusions"),
        ("logs-*,-", "empty exclusion"),
        ("a,-a", "must follow a wildcard"),
        ("Logs-*", "lowercase"),
        ("logs-?", "'*' only"),
        ("a b", "must not contain"),
        ("_all", "must not start with"),
        ("logs-*,_x*", "must not start with"),
        ("logs-*,.hidden", "reserved"),
        ("a" * 256, "255 bytes"),
    ],
)
def test_bad_targets_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidTarget) as err:
        parse_target(text)
    assert reason in str(err.value)
    assert reason in (target_problem(text) or "")


def test_good_targets_have_no_problem() -> None:
    for text in ("events", "logs-*", "a,b", "logs-*,-logs-debug-*", "*", "logstash-2026.12.*"):
        assert target_problem(text) is None


def test_coverage_by_name_follows_the_engine_left_to_right() -> None:
    t = parse_target("logs-*,-logs-debug-*")
    assert t.covers(["logs-app"])
    assert not t.covers(["logs-debug-1"])
    assert not t.covers(["other"])
    back = parse_target("a*,-a1*,a1x*")
    assert back.covers(["a1x2"])
    assert not back.covers(["a12"])
    assert back.covers(["a2"])
    out = parse_target("a*,a1x*,-a1*")
    assert not out.covers(["a1x2"])


def test_coverage_through_an_alias_name_and_hidden_names() -> None:
    t = parse_target("current")
    assert t.covers(["logs-2026.12.01", "current"])
    assert not t.covers(["logs-2026.12.01"])
    star = parse_target("*")
    assert not star.covers([".ds-logs-x-2026.12.01-000001"])
    assert star.covers([".ds-logs-x-2026.12.01-000001", "logs-x"])


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("logs-*", "logs-*", True),
        ("logs-*", "logs-2026.*", True),
        ("logs-*", "*-2026", True),
        ("logs-*", "metrics-*", False),
        ("logstash-2026.12.01", "logstash-*", True),
        ("a", "b", False),
        ("*", "anything", True),
    ],
)
def test_templates_apply_where_patterns_overlap(a: str, b: str, overlap: bool) -> None:
    assert globs_overlap(a, b) is overlap
    assert globs_overlap(b, a) is overlap
