"""Secrets: never in any log, never a debug-level router, never silently empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.config import ConfigError, Settings
from devstack import foreground
from devstack import stack as stack_api
from devstack.router import REPO, EmptySecret, render_config, router_process
from devstack.stack import Stack
from tests.http_client import ingest
from tests.real_stack import SECRETS, StartService
from tests.security.serving import assert_still_serving

INGEST_TOKEN = "ingest-token-" + SECRETS["ESTROM_ADMIN_SECRET"][:12]


@pytest.mark.parametrize("variable", ["ESTROM_BEATER_SECRET", "ESTROM_TAILOR_SECRET"])
@pytest.mark.parametrize("value", ["", "  "])
def test_a_set_but_empty_secret_is_a_config_error(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})
    assert Settings.from_env({}).beater_secret == ""  # unset: join anonymously


@pytest.mark.parametrize("variable", ["ESTROM_BEATER_SECRET", "ESTROM_TAILOR_SECRET", "ESTROM_ADMIN_SECRET"])
def test_router_rendering_refuses_an_empty_secret(tmp_path: Path, variable: str) -> None:
    with pytest.raises(EmptySecret, match=variable):
        render_config(tmp_path, host="127.0.0.1", port=8080, env={**SECRETS, variable: ""})


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "variable"), [("beater", "ESTROM_BEATER_SECRET"), ("tailor", "ESTROM_TAILOR_SECRET")]
)
def test_services_stop_at_start_up_on_an_empty_secret(
    stack: Stack, router: Any, module: str, variable: str
) -> None:
    env = stack.service_env(
        module, engine_url="http://127.0.0.1:9", router_url=router.service_url, **{variable: ""}
    )
    handle = stack.start_service(module, env=env, wait=False)
    assert handle.process.process is not None
    code = handle.process.process.wait(60)
    handle.stop()
    assert code != 0
    log = handle.process.log_path.read_text()
    assert f"{variable} is set but empty" in log
    assert handle.process.ready_info is None


def test_the_stack_refuses_an_empty_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("ESTROM_TAILOR_SECRET", "")
    assert foreground.main(["--state-dir", str(tmp_path)]) == 1
    assert "ESTROM_TAILOR_SECRET set but empty" in capsys.readouterr().out
    assert not (tmp_path / "engine").exists()  # nothing was started


def test_the_router_never_runs_at_debug_level(tmp_path: Path) -> None:
    proc = router_process(tmp_path, host="127.0.0.1", port=1, log_path=tmp_path / "r.log", env=SECRETS)
    level = proc.argv[proc.argv.index("--loglevel") + 1]
    assert level == "warn"
    assert stack_api.router_process is router_process  # the stack starts the router through it
    # The router image's command (docker-compose.yml runs it as built).
    dockerfile = (REPO / "Dockerfile").read_text()
    assert '"--loglevel", "warn"]' in dockerfile
    assert "--loglevel" not in (REPO / "docker-compose.yml").read_text()  # no override of it
    assert not {"debug", "trace"} & set(proc.argv)


@pytest.mark.integration
def test_no_secret_reaches_any_log(
    workdir: Path, beater: Any, tailor: Any, start_beater: StartService, index: str
) -> None:
    """Router, beaters and tailors (at debug level) through logins, ingest with a token, tails."""
    guarded = start_beater(ESTROM_INGEST_TOKEN=INGEST_TOKEN)
    assert ingest(guarded.url, index, {"a": 1}, headers={"authorization": "Bearer wrong"}).status == 401
    ok = ingest(guarded.url, index, {"a": 1}, headers={"authorization": f"Bearer {INGEST_TOKEN}"})
    assert ok.status == 200
    assert_still_serving(beater.url, tailor.url)
    guarded.stop()

    logs = sorted(workdir.rglob("*.log"))
    names = {p.name for p in logs}
    assert "router.log" in names
    assert any(n.startswith("beater-") for n in names)
    assert any(n.startswith("tailor-") for n in names)
    secrets = [*SECRETS.values(), INGEST_TOKEN]
    for path in logs:
        if "engine" in path.parts:
            continue
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret is in {path}"
