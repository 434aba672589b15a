"""The rules every stack follows: no developer settings leak in, each service gets only its own secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.router import render_config
from devstack.settings import (
    ANY_PORT,
    DEFAULT_ENGINE_DIST,
    engine_dist,
    engine_home,
    engine_settings,
    router_env,
    router_workers,
    service_env,
    without_estrom,
)

SECRETS = {"ESTROM_BEATER_SECRET": "b", "ESTROM_TAILOR_SECRET": "t", "ESTROM_ADMIN_SECRET": "a"}


def test_a_developers_estrom_settings_are_left_out() -> None:
    assert without_estrom({"PATH": "/bin", "ESTROM_BATCH_SIZE": "1", "XESTROM_": "kept"}) == {
        "PATH": "/bin",
        "XESTROM_": "kept",
    }


def test_the_router_gets_every_secret_and_its_overrides() -> None:
    env = router_env({"PATH": "/bin"}, SECRETS, ESTROM_ROUTER_ANONYMOUS="0")
    assert env == {"PATH": "/bin", **SECRETS, "ESTROM_ROUTER_ANONYMOUS": "0"}


def test_a_service_gets_its_own_secret_only_and_a_free_port() -> None:
    base = {"PATH": "/bin", "ESTROM_TAILOR_SECRET": "from-base"}
    env = service_env(
        "beater", base, SECRETS, engine_urls=["http://e:1/"], router_url="ws://r/ws", ESTROM_LOG_LEVEL="debug"
    )
    assert env == {
        "PATH": "/bin",
        "PYTHONUNBUFFERED": "1",
        "ESTROM_BEATER_SECRET": "b",
        "ESTROM_ENGINE_URL": "http://e:1",
        "ESTROM_ROUTER_URL": "ws://r/ws",
        "ESTROM_BEATER_LISTEN": ANY_PORT,
        "ESTROM_LOG_LEVEL": "debug",
    }


def test_settings_win_and_configured_ports_stay_when_asked() -> None:
    base = {"ESTROM_TAILOR_LISTEN": "tcp:8082"}
    env = service_env(
        "tailor",
        base,
        SECRETS,
        engine_urls=["http://e:1"],
        router_url="ws://r/ws",
        any_port=False,
        ESTROM_TAILOR_SECRET="other",
    )
    assert env["ESTROM_TAILOR_LISTEN"] == "tcp:8082"
    assert env["ESTROM_TAILOR_SECRET"] == "other"
    assert "ESTROM_BEATER_SECRET" not in env


def test_several_engine_urls_are_one_setting() -> None:
    assert engine_settings(["http://a:1/", "http://b:2"]) == {"ESTROM_ENGINE_URL": "http://a:1,http://b:2"}


def test_the_engine_choice_defaults_to_the_tested_engine() -> None:
    assert engine_dist({}) == DEFAULT_ENGINE_DIST
    assert engine_dist({"ESTROM_ENGINE_DIST": " elasticsearch-7.17.28 "}) == "elasticsearch-7.17.28"


@pytest.mark.parametrize("dist", ["opensearch-1.3.20", "elasticsearch", "7.17.29", "elasticsearch-8.15.0"])
def test_an_engine_that_cannot_be_provisioned_is_refused_by_name(dist: str) -> None:
    with pytest.raises(ValueError, match="ESTROM_ENGINE_DIST"):
        engine_home(dist)


def test_router_workers_is_one_unless_set_and_scripts_stack_gives_one_per_four_cores() -> None:
    assert router_workers({}) == 1
    assert router_workers({}, cores=2) == 1
    assert router_workers({}, cores=16) == 4
    assert router_workers({"ESTROM_ROUTER_WORKERS": "3"}, cores=2) == 3
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="ESTROM_ROUTER_WORKERS"):
            router_workers({"ESTROM_ROUTER_WORKERS": bad})


def test_a_partitions_node_lets_in_only_the_services(tmp_path: Path) -> None:
    """No page, no anonymous browser, no reader's ticket: those are the front's, with its gate."""
    env = {**SECRETS, "ESTROM_ROUTER_ANONYMOUS": "1"}
    front = json.loads(render_config(tmp_path / "front", host="127.0.0.1", port=1, env=env).read_text())
    other = json.loads(
        render_config(tmp_path / "p1", host="127.0.0.1", port=2, env=env, partition=1).read_text()
    )
    front_paths = front["workers"][0]["transports"][0]["paths"]
    paths = other["workers"][0]["transports"][0]["paths"]
    assert "anonymous" in front_paths["ws"]["auth"]
    assert set(paths) == {"ws", "metrics"}
    assert set(paths["ws"]["auth"]) == {"wampcra"}
    assert paths["ws"]["auth"]["wampcra"] == front_paths["ws"]["auth"]["wampcra"]
    with pytest.raises(ValueError, match="only the services"):
        render_config(tmp_path / "p2", host="127.0.0.1", port=3, env={}, partition=1)
