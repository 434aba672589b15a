from __future__ import annotations

import pytest

from common.indices import index_name_problem


@pytest.mark.parametrize("name", ["events", "logs-2026.11.27", "a_b-c+d", "x" * 255, "émoji"])
def test_valid(name: str) -> None:
    assert index_name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("", "empty"),
        (".", "'.'"),
        ("..", "'.'"),
        ("Events", "lowercase"),
        ("_x", "must not start"),
        ("-x", "must not start"),
        ("+x", "must not start"),
        ("a b", "' '"),
        ("a:b", "':'"),
        ("a#b", "'#'"),
        ("é" * 128, "255 bytes"),
        (".kibana", "reserved"),
    ],
)
def test_invalid(name: str, part: str) -> None:
    problem = index_name_problem(name)
    assert problem is not None
    assert part in problem
