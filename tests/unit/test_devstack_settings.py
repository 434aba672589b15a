"""The rules every stack follows: no developer settings leak in, each service gets only its own secret."""

from __future__ import annotations

import pytest

from devstack.settings import (
    ANY_PORT,
    DEFAULT_ENGINE_DIST,
    engine_dist,
    engine_home,
    engine_settings,
    router_env,
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


@pytest.mark.parametrize("dist", ["opensearch-2.19.0", "elasticsearch", "7.17.29"])
def test_an_engine_that_cannot_be_provisioned_is_refused_by_name(dist: str) -> None:
    with pytest.raises(ValueError, match="ESTROM_ENGINE_DIST"):
        engine_home(dist)
