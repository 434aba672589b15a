"""The deployment as a user runs it: ``docker compose`` on the provisioned engine.

``scripts/container-engine`` provisions dockerd on its own socket, the compose
plugin and the stand-in base images, and writes the variables that point the
docker CLI at them (``DOCKER_HOST``, ``DOCKER_CONFIG``, the stand-in image
names). Every compose command the tier runs goes through :class:`Compose`,
which records it: the README's deployment section is checked against that
record (``test_readme_commands_were_run``).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: The contract's default ports: the tier publishes exactly these.
DEFAULT_PORTS = {"router": 8080, "beater": 8081, "tailor": 8082, "elasticsearch": 9200}
SCALE_FILE = "deploy/compose.scale.yml"
ROUTERS_FILE = "deploy/compose.routers.yml"
#: Every file the tier runs compose with: a ``down`` with all of them leaves no service behind.
ALL_FILES = ("-f", "docker-compose.yml", "-f", SCALE_FILE, "-f", ROUTERS_FILE)


def provision() -> dict[str, str] | str:
    """Run ``scripts/container-engine``: the engine's variables, or why this machine cannot."""
    proc = subprocess.run(
        [str(REPO / "scripts" / "container-engine")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=sys.stderr.fileno(),
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/container-engine failed with exit code {proc.returncode}")
    last = proc.stdout.strip().splitlines()[-1]
    kind, _, value = last.partition(": ")
    if kind == "unavailable":
        return value
    env: dict[str, str] = {}
    for line in Path(value).read_text().splitlines():
        if line.startswith("export "):
            key, _, val = line[len("export ") :].partition("=")
            env[key] = val
    return env


def ports_in_use(ports: list[int]) -> list[int]:
    """Which of ``ports`` something already listens on (127.0.0.1)."""
    taken = []
    for port in ports:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    return taken


@dataclass
class Compose:
    """``docker compose`` in the checkout, with the engine's environment and the secrets."""

    env: dict[str, str]
    ran: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 600.0, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", *args]
        self.ran.append(shlex.join(argv))
        print(f"$ {shlex.join(argv)}", file=sys.stderr, flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            cwd=REPO,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        took = time.monotonic() - started
        print(f"  ({took:.1f} s, exit {proc.returncode})", file=sys.stderr, flush=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"{shlex.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-6000:]}")
        return proc
