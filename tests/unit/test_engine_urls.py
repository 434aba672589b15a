"""ESTROM_ENGINE_URL lists one node or several, comma-separated; anything else stops at start-up."""

from __future__ import annotations

import pytest

from common.config import ConfigError, Settings
from common.engine_urls import parse_urls


def test_one_url() -> None:
    assert parse_urls("http://127.0.0.1:9200/") == ["http://127.0.0.1:9200"]


def test_several_urls_with_spaces_and_empty_items() -> None:
    urls = parse_urls(" http://a:9200, https://b:9201/ ,,http://c:9202")
    assert urls == ["http://a:9200", "https://b:9201", "http://c:9202"]


@pytest.mark.parametrize("text", ["", " , ", "http://a:9200,b:9200", "es:9200"])
def test_bad_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="ESTROM_ENGINE_URL"):
        parse_urls(text)


def test_settings_accept_a_list_and_refuse_a_bad_item() -> None:
    s = Settings.from_env({"ESTROM_ENGINE_URL": "http://a:9200,http://b:9200"})
    assert s.engine_url == "http://a:9200,http://b:9200"
    with pytest.raises(ConfigError, match="not 'b:9200'"):
        Settings.from_env({"ESTROM_ENGINE_URL": "http://a:9200,b:9200"})
