"""The stack a benchmark runs against: engine, router, one beater (and a tailor) on free ports.

Started like tests/conftest.py does (ready on their signals, fresh router
secrets, no developer ESTROM_* settings leaking in) and stopped in reverse.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devstack.engine import EngineNode, ensure_engine
from devstack.processes import ManagedProcess, free_port, wait_for_port
from devstack.router import REPO, generate_secrets, router_process

#: Readers' quotas (issue 15) off: a benchmark measures the stack, with all its load from one address.
#: bench/readers_flood.py passes ``quotas={}`` to measure the defaults instead.
UNLIMITED_QUOTAS = {
    "ESTROM_QUOTA_SUBSCRIPTIONS": "0",
    "ESTROM_QUOTA_REGISTRATIONS_PER_SECOND": "0",
    "ESTROM_QUOTA_TAILS": "0",
    "ESTROM_QUOTA_TAILS_TOTAL": "0",
}


def log(msg: str) -> None:
    """Progress on stderr; the figures go to stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Stack:
    workdir: Path
    heap: str = "1g"
    #: extra ESTROM_* settings of the beater (batching, lifecycle, log level)
    beater_settings: dict[str, str] = field(default_factory=dict)
    #: start a tailor too (``tailor_url``), with these extra ESTROM_* settings
    with_tailor: bool = False
    tailor_settings: dict[str, str] = field(default_factory=dict)
    engine: EngineNode | None = None
    router: ManagedProcess | None = None
    beater: ManagedProcess | None = None
    tailor: ManagedProcess | None = None
    tailor_host: str = ""
    tailor_port: int = 0
    router_port: int = 0
    beater_host: str = ""
    beater_port: int = 0
    #: the router principals' WAMP-CRA secrets, fresh for this run (ESTROM_*_SECRET)
    secrets: dict[str, str] = field(default_factory=generate_secrets)
    #: readers' quota settings of router and tailor
    quotas: dict[str, str] = field(default_factory=lambda: dict(UNLIMITED_QUOTAS))

    @property
    def engine_url(self) -> str:
        assert self.engine is not None
        return self.engine.url

    @property
    def router_url(self) -> str:
        return f"ws://127.0.0.1:{self.router_port}/ws"

    @property
    def beater_url(self) -> str:
        return f"http://{self.beater_host}:{self.beater_port}"

    @property
    def tailor_url(self) -> str:
        return f"http://{self.tailor_host}:{self.tailor_port}"

    def start(self) -> None:
        t0 = time.perf_counter()
        self.engine = EngineNode(
            home=ensure_engine(),
            state_dir=self.workdir / "engine",
            http_port=free_port(),
            transport_port=free_port(),
            heap=self.heap,
        )
        self.engine.start(log_path=self.workdir / "engine.log")
        self.router_port = free_port()
        cbdir = self.workdir / "router"
        self.router = router_process(
            cbdir, host="127.0.0.1", port=self.router_port, log_path=cbdir / "router.log", env=self._env()
        )
        self.router.start()
        wait_for_port("127.0.0.1", self.router_port, 60, self.router.alive)
        self.engine.wait_ready(timeout=180)
        self.beater, self.beater_host, self.beater_port = self._start_service("beater", self.beater_settings)
        if self.with_tailor:
            self.tailor, self.tailor_host, self.tailor_port = self._start_service(
                "tailor", self.tailor_settings
            )
        log(
            f"stack up in {time.perf_counter() - t0:.0f}s: engine {self.engine_url}, router {self.router_url}"
        )

    def _env(self) -> dict[str, str]:
        """Ours without a developer's ESTROM_* settings, plus this run's secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ESTROM_")}
        return env | self.secrets | self.quotas

    def _start_service(self, role: str, settings: dict[str, str]) -> tuple[ManagedProcess, str, int]:
        """Start ``python -m <role>`` with its principal's secret; wait for its ready line."""
        env = {k: v for k, v in self._env().items() if k not in self.secrets} | {
            "PYTHONUNBUFFERED": "1",
            f"ESTROM_{role.upper()}_SECRET": self.secrets[f"ESTROM_{role.upper()}_SECRET"],
            "ESTROM_ENGINE_URL": self.engine_url,
            "ESTROM_ROUTER_URL": self.router_url,
            f"ESTROM_{role.upper()}_LISTEN": "tcp:0:interface=127.0.0.1",
            **settings,
        }
        proc = ManagedProcess(
            role, [sys.executable, "-m", role], env=env, cwd=REPO, log_path=self.workdir / f"{role}.log"
        )
        proc.start()
        info = proc.wait_ready(timeout=60)
        return proc, info["host"], int(info["port"])

    def stop(self) -> None:
        """Tailor and beater first (the others' clients), then router, then engine."""
        for proc in (self.tailor, self.beater, self.router):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        if self.engine is not None:
            with contextlib.suppress(Exception):
                self.engine.stop()

    def pid(self, name: str) -> int:
        """Process id of ``engine`` (its launcher), ``router`` (controller), ``beater`` or ``tailor``."""
        handle = {"engine": self.engine, "router": self.router, "beater": self.beater, "tailor": self.tailor}[
            name
        ]
        assert handle is not None
        assert handle.process is not None
        return handle.process.pid

    def beater_metrics(self, *names: str) -> dict[str, float]:
        """Unlabelled samples of the beater's /metrics page (0 if absent), by short name."""
        with urllib.request.urlopen(f"{self.beater_url}/metrics", timeout=10) as resp:
            lines = resp.read().decode().splitlines()
        found = dict.fromkeys(names, 0.0)
        for line in lines:
            name, _, value = line.partition(" ")
            short = name.removeprefix("estrom_beater_")
            if short in found:
                found[short] = float(value)
        return found

    def beater_metric(self, name: str) -> float:
        return self.beater_metrics(name)[name]


def _interrupted(_signum: int, _frame: object) -> None:
    """SIGINT or SIGTERM: stop the run; further signals are ignored so the teardown completes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_in_workdir(name: str, run: Callable[[Path], None], keep: bool) -> int:
    """Run a benchmark in a fresh work directory; keep its logs when it fails or when asked."""
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)  # even where the launcher ignored it (``cmd &``)
    # Under /tmp, not the checkout: the unprivileged engine user must reach it.
    workdir = Path(tempfile.mkdtemp(prefix=f"estrom-bench-{name}-"))
    workdir.chmod(0o755)
    try:
        run(workdir)
    except KeyboardInterrupt:
        log(f"interrupted; stack stopped, logs kept in {workdir}")
        return 130
    except BaseException:
        log(f"failed; stack stopped, logs kept in {workdir}")
        raise
    if keep:
        log(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def emit(text: str, out: Path | None) -> None:
    """The figures to stdout, and to ``out`` when given."""
    print(text, flush=True)
    if out:
        out.write_text(text + "\n")
        log(f"written to {out}")
