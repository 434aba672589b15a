"""Shards and replicas of new percolator indices come from settings; unset, the engine decides."""

from __future__ import annotations

import pytest

from beater.store.schema import percolator_index_body
from common.config import ConfigError, Settings


def test_unset_leaves_both_to_the_engine() -> None:
    s = Settings.from_env({})
    assert (s.query_index_shards, s.query_index_replicas) == (None, None)
    body = percolator_index_body(s.query_index_shards, s.query_index_replicas)
    assert "number_of_shards" not in body["settings"]
    assert "number_of_replicas" not in body["settings"]


def test_set_values_go_into_the_index_settings() -> None:
    s = Settings.from_env({"ESTROM_QUERY_INDEX_SHARDS": "3", "ESTROM_QUERY_INDEX_REPLICAS": "1"})
    body = percolator_index_body(s.query_index_shards, s.query_index_replicas)
    assert body["settings"]["number_of_shards"] == 3
    assert body["settings"]["number_of_replicas"] == 1


def test_zero_replicas_is_a_value() -> None:
    s = Settings.from_env({"ESTROM_QUERY_INDEX_REPLICAS": "0"})
    assert s.query_index_replicas == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ESTROM_QUERY_INDEX_SHARDS", "0"),
        ("ESTROM_QUERY_INDEX_SHARDS", "two"),
        ("ESTROM_QUERY_INDEX_REPLICAS", "-1"),
    ],
)
def test_bad_counts_stop_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
