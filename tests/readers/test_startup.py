"""Defaults that fail closed: a non-loopback tailor or router does not start without readers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from common.access.errors import ReadersError
from devstack.router import REPO, render_config


def run_tailor(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "/usr/bin:/bin",
        "ESTROM_ROUTER_URL": "ws://127.0.0.1:1/ws",
        "ESTROM_ENGINE_URL": "http://127.0.0.1:1",
    }
    return subprocess.run(
        [sys.executable, "-m", "tailor"],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("listen", ["tcp:0:interface=0.0.0.0", "tcp:0"])
def test_a_tailor_on_every_interface_refuses_to_start_without_readers(listen: str) -> None:
    done = run_tailor({"ESTROM_TAILOR_LISTEN": listen})
    assert done.returncode == 2
    assert "ESTROM_READERS is unset" in done.stderr
    assert "ESTROM_ANONYMOUS_READS=all" in done.stderr


def test_a_tailor_with_a_broken_readers_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "readers.json"
    path.write_text(json.dumps({"readers": [{"name": "x", "token": "short", "targets": ["a"]}]}))
    done = run_tailor({"ESTROM_READERS": str(path)})
    assert done.returncode == 2
    assert "too short" in done.stderr


def test_a_router_on_every_interface_refuses_to_start_without_readers(tmp_path: Path) -> None:
    with pytest.raises(ReadersError, match=r"the router listens on 0\.0\.0\.0"):
        render_config(tmp_path, host="0.0.0.0", port=8080, env={})
    assert not (tmp_path / "config.json").exists()


def test_the_explicit_opt_in_and_loopback_start(tmp_path: Path) -> None:
    render_config(tmp_path / "a", host="0.0.0.0", port=8080, env={"ESTROM_ANONYMOUS_READS": "all"})
    render_config(tmp_path / "b", host="127.0.0.1", port=8080, env={})
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    ws = config["workers"][0]["transports"][0]["paths"]["ws"]
    assert "ticket" not in ws["auth"]  # no readers file: no reader can log in
    readers = tmp_path / "readers.json"
    readers.write_text(json.dumps({"anonymous": {"targets": ["public-*"]}}))
    render_config(tmp_path / "c", host="0.0.0.0", port=8080, env={"ESTROM_READERS": str(readers)})
    ws = json.loads((tmp_path / "c" / "config.json").read_text())["workers"][0]["transports"][0]["paths"][
        "ws"
    ]
    assert ws["auth"]["ticket"]["authenticator"] == "estrom.router.authenticate"
