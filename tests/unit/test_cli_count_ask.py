"""``estrom counts``' request: what the command line asks, and only that, in the tailor's parameters."""

from __future__ import annotations

import urllib.parse

from estrom_cli.counts import CountAsk


def _params(path: str) -> dict[str, list[str]]:
    route, _, query = path.partition("?")
    assert route == "/api/v0.1/counts"
    return urllib.parse.parse_qs(query)


def test_defaults_are_left_to_the_tailor() -> None:
    assert _params(CountAsk("logs", "level:error", None).path()) == {"i": ["logs"], "q": ["level:error"]}


def test_every_option_is_sent() -> None:
    ask = CountAsk("logs", "x", None, by="service", k=3, every=0.5, since="5m", limit=2)
    assert _params(ask.path()) == {
        "i": ["logs"],
        "q": ["x"],
        "by": ["service"],
        "k": ["3"],
        "every": ["0.5"],
        "since": ["5m"],
        "limit": ["2"],
    }


def test_k_only_with_by_and_a_sid_instead_of_the_target() -> None:
    assert _params(CountAsk(None, None, "3f2a", k=3).path()) == {"s": ["3f2a"]}
