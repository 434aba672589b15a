"""Client and server versions must fit: checked in one place, at start-up."""

from __future__ import annotations

import elasticsearch
import opensearchpy
import pytest

from common.engine import (
    EngineRejected,
    EngineUnavailable,
    ServerInfo,
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
    server = check_engine_info({"version": {"number": number}})
    assert server == ServerInfo("elasticsearch", parse_version(number))


@pytest.mark.parametrize("number", ["2.0.0", "2.19.6", "3.8.0", "3.9.0"])
def test_supported_opensearch(number: str) -> None:
    server = check_engine_info({"version": {"number": number, "distribution": "opensearch"}})
    assert server == ServerInfo("opensearch", parse_version(number))


@pytest.mark.parametrize(
    ("info", "line"),
    [
        ({"version": {"number": "7.17.29"}}, "Elasticsearch 7.17.29 (supported, tested)"),
        ({"version": {"number": "7.12.1"}}, "Elasticsearch 7.12.1 (supported, not tested here)"),
        (
            {"version": {"number": "2.19.6", "distribution": "opensearch"}},
            "OpenSearch 2.19.6 (supported, tested)",
        ),
        (
            {"version": {"number": "3.8.0", "distribution": "opensearch"}},
            "OpenSearch 3.8.0 (supported, tested)",
        ),
    ],
)
def test_start_up_line_names_engine_version_and_support(info: dict, line: str) -> None:
    assert check_engine_info(info).describe() == line


@pytest.mark.parametrize(
    "info",
    [
        {"version": {"number": "8.15.0"}},
        {"version": {"number": "9.1.0"}},
        {"version": {"number": "7.9.3"}},
        {"version": {"number": "1.3.20", "distribution": "opensearch"}},
        {"version": {"number": "4.0.0", "distribution": "opensearch"}},
        {"version": {"number": "1.0.0", "distribution": "solr"}},
    ],
)
def test_unsupported_servers(info: dict) -> None:
    with pytest.raises(UnsupportedEngine, match="not supported"):
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


def test_opensearch_client_errors_are_translated_like_elasticsearch_ones() -> None:
    refused = opensearchpy.ConnectionError("N/A", "refused", None)
    assert isinstance(translate_error(refused), EngineUnavailable)
    bad = opensearchpy.TransportError(
        400, "parse_exception", {"error": {"type": "parse_exception", "reason": "Cannot parse 'a:('"}}
    )
    translated = translate_error(bad)
    assert isinstance(translated, EngineRejected)
    assert translated.reason == "Cannot parse 'a:('"
    assert isinstance(translate_error(opensearchpy.TransportError(429, "too many", {})), EngineUnavailable)
    assert isinstance(translate_error(opensearchpy.TransportError(503, "no master", {})), EngineUnavailable)
