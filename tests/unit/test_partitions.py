import secrets

import pytest

from common.config import Settings
from common.environment import ConfigError
from common.partitions import partition_of, router_urls


def test_one_partition_takes_every_sid() -> None:
    assert {partition_of(secrets.token_hex(8), 1) for _ in range(100)} == {0}


def test_sids_spread_evenly_and_always_the_same_way() -> None:
    sids = [secrets.token_hex(8) for _ in range(4000)]
    counts = [0, 0, 0, 0]
    for sid in sids:
        counts[partition_of(sid, 4)] += 1
    assert min(counts) > 800  # 1000 expected each
    assert [partition_of(s, 4) for s in sids] == [partition_of(s, 4) for s in sids]
    assert partition_of("000000000000000b", 4) == 3


def test_no_partitions_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        partition_of("000000000000000b", 0)


def test_the_router_url_setting_lists_the_nodes_in_partition_order() -> None:
    assert router_urls("ws://a:8080/ws") == ["ws://a:8080/ws"]
    assert router_urls(" ws://a/ws, ws://b/ws ,") == ["ws://a/ws", "ws://b/ws"]
    assert Settings.from_env({"ESTROM_ROUTER_URL": "ws://a/ws,ws://b/ws"}).router_urls == [
        "ws://a/ws",
        "ws://b/ws",
    ]
    with pytest.raises(ConfigError, match="one per router node"):
        Settings.from_env({"ESTROM_ROUTER_URL": "ws://a/ws,http://b/"})
    # The tailor's page origins are the front node's.
    assert Settings.from_env({"ESTROM_ROUTER_URL": "ws://a:1/ws,ws://b:2/ws"}).cors_origins() == (
        "http://127.0.0.1:1",
        "http://localhost:1",
        "http://a:1",
    )
