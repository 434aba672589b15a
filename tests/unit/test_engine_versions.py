"""Client and server versions must fit: checked in one place, at start-up."""

from __future__ import annotations

import elasticsearch
import pytest

from common.engine import (
    EngineRejected,
    EngineUnavailable,
    UnsupportedEngine,
    check_client_version,
    check_engine_info,
    parse_version,
    translate_error,
)


def test_installed_client_fits_the_supported_servers() -> None:
    assert elasticsearch.VERSION[0] == 7
    check_client_version()


@pytest.mark.parametrize("client", [(8, 15, 0), (9, 0, 1), (6, 8, 0)])
def test_other_client_majors_are_refused(client: tuple[int, int, int]) -> None:
    with pytest.raises(UnsupportedEngine):
        check_client_version(client)


@pytest.mark.parametrize("number", ["7.10.0", "7.17.29", "7.17.29-SNAPSHOT"])
def test_supported_servers(number: str) -> None:
    assert check_engine_info({"version": {"number": number}}) == parse_version(number)


@pytest.mark.parametrize(
    "info",
    [
        {"version": {"number": "8.15.0"}},
        {"version": {"number": "9.1.0"}},
        {"version": {"number": "7.9.3"}},
        {"version": {"number": "2.19.1", "distribution": "opensearch"}},
    ],
)
def test_unsupported_servers(info: dict) -> None:
    with pytest.raises(UnsupportedEngine):
        check_engine_info(info)


def test_errors_are_translated() -> None:
    assert isinstance(
        translate_error(elasticsearch.ConnectionError("N/A", "refused", None)), EngineUnavailable
    )
    bad = elasticsearch.TransportError(
        400,
        "search_phase_execution_exception",
        {
            "error": {
                "type": "x_content_parse_exception",
                "reason": "failed to parse",
                "root_cause": [{"type": "parse_exception", "reason": "failed to parse"}],
                "caused_by": {"type": "parse_exception", "reason": "Cannot parse 'a:(': Encountered <EOF>"},
            }
        },
    )
    translated = translate_error(bad)
    assert isinstance(translated, EngineRejected)
    assert translated.status == 400
    assert "Cannot parse 'a:('" in translated.reason
    assert isinstance(translate_error(elasticsearch.TransportError(429, "too many", {})), EngineUnavailable)
    assert isinstance(
        translate_error(elasticsearch.TransportError(503, "unavailable", {})), EngineUnavailable
    )
