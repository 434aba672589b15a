from __future__ import annotations

import pytest

from common.config import CliSettings, ConfigError, Settings, local_url


def test_defaults_match_the_contract() -> None:
    s = Settings.from_env({})
    assert s.engine_url == "http://127.0.0.1:9200"
    assert s.router_url == "ws://127.0.0.1:8080/ws"
    assert s.realm == "estrom"
    assert s.beater_listen == "tcp:8081:interface=127.0.0.1"
    assert s.tailor_listen == "tcp:8082:interface=127.0.0.1"
    assert s.ingest_max_body == 64 * 1024 * 1024


def test_values_are_read_and_checked() -> None:
    s = Settings.from_env(
        {"ESTROM_BATCH_SIZE": "7", "ESTROM_ENGINE_URL": "http://es:9200/", "ESTROM_INGEST_TOKEN": "t"}
    )
    assert s.batch_size == 7
    assert s.engine_url == "http://es:9200"
    assert s.as_dict()["ingest_token"] == "<set>"


@pytest.mark.parametrize(
    "env",
    [
        {"ESTROM_BATCH_SIZE": "many"},
        {"ESTROM_BATCH_SIZE": "0"},
        {"ESTROM_ENGINE_TIMEOUT": "-1"},
        {"ESTROM_ROUTER_URL": "http://x"},
        {"ESTROM_ENGINE_URL": "es:9200"},
        {"ESTROM_LOG_LEVEL": "loud"},
        {"ESTROM_LOG_FORMAT": "xml"},
    ],
)
def test_bad_values_fail_at_start(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_secrets_are_never_in_the_printable_settings() -> None:
    env = {"ESTROM_INGEST_TOKEN": "tok-1", "ESTROM_BEATER_SECRET": "bsec-2", "ESTROM_TAILOR_SECRET": "tsec-3"}
    shown = Settings.from_env(env).as_dict()
    assert not {"tok-1", "bsec-2", "tsec-3"} & {str(v) for v in shown.values()}
    assert shown["beater_secret"] == "<set>"


def test_lifecycle_settings() -> None:
    s = Settings.from_env({"ESTROM_QUERY_GRACE": "1.5", "ESTROM_QUERY_SWEEP_INTERVAL": "0.5"})
    assert (s.query_grace, s.query_sweep_interval) == (1.5, 0.5)
    assert Settings.from_env({}).query_grace == 600
    with pytest.raises(ConfigError):
        Settings.from_env({"ESTROM_QUERY_SWEEP_INTERVAL": "0"})


@pytest.mark.parametrize("value", ["", " ", "\n", "\t \n"])
def test_set_but_empty_ingest_token_stops_the_process(value: str) -> None:
    # Like the router secrets: an unexpanded ${VAR} must not turn authentication off.
    with pytest.raises(ConfigError, match="ESTROM_INGEST_TOKEN is set but empty"):
        Settings.from_env({"ESTROM_INGEST_TOKEN": value})


def test_ingest_token_surrounding_whitespace_is_dropped() -> None:
    assert Settings.from_env({"ESTROM_INGEST_TOKEN": "  s3cret\n"}).ingest_token == "s3cret"
    assert Settings.from_env({}).ingest_token == ""


@pytest.mark.parametrize("value", ["two words", "tab\tinside", "caf\u00e9"])
def test_ingest_token_must_be_sendable(value: str) -> None:
    with pytest.raises(ConfigError, match="ESTROM_INGEST_TOKEN must be printable ASCII"):
        Settings.from_env({"ESTROM_INGEST_TOKEN": value})


def test_one_error_for_every_bad_value_quotas_included() -> None:
    for env in (
        {"ESTROM_QUOTA_SUBSCRIPTIONS": "many"},
        {"ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": "-1"},
        {"ESTROM_TRUSTED_PROXIES": "proxy.local"},
        {"ESTROM_ENGINE_TIMEOUT": "nan"},
        {"ESTROM_QUOTA_DESCRIBES_PER_SECOND": "nan"},
    ):
        with pytest.raises(ConfigError):
            Settings.from_env(env)
    assert Settings.from_env({"ESTROM_QUOTA_TAILS": " 7 "}).quotas.tails == 7
    assert Settings.from_env({"ESTROM_BATCH_SIZE": "  "}).batch_size == Settings.batch_size


def test_the_cli_defaults_are_where_default_services_listen() -> None:
    cli = CliSettings.from_env({})
    assert cli == CliSettings()
    assert (cli.beater_url, cli.tailor_url) == ("http://127.0.0.1:8081", "http://127.0.0.1:8082")
    assert (cli.engine_url, cli.router_url, cli.realm) == (
        Settings.engine_url,
        Settings.router_url,
        Settings.realm,
    )
    assert cli.query_index_prefix == Settings.query_index_prefix


def test_the_cli_reads_its_environment() -> None:
    cli = CliSettings.from_env(
        {
            "ESTROM_BEATER_URL": "http://b:1",
            "ESTROM_TAILOR_URL": "",  # empty: the default
            "ESTROM_TOKEN": "r",
            "ESTROM_READERS": " /etc/estrom/access.json ",
            "NO_COLOR": "1",
        }
    )
    assert (cli.beater_url, cli.tailor_url, cli.token) == ("http://b:1", CliSettings.tailor_url, "r")
    assert (cli.access_file, cli.no_color) == ("/etc/estrom/access.json", True)


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("tcp:8081:interface=127.0.0.1", "http://127.0.0.1:8081"),
        ("tcp:8082", "http://127.0.0.1:8082"),
        ("tcp:port=9000:interface=0.0.0.0", "http://127.0.0.1:9000"),
        (r"tcp:9001:interface=\:\:1", "http://[::1]:9001"),
    ],
)
def test_local_url_of_a_listen_address(listen: str, url: str) -> None:
    assert local_url(listen) == url
