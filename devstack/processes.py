"""Child processes that say when they are ready, for the stack command and the tests.

Beater and tailor print one JSON line ``{"event": "ready", ...}`` on stdout
once they listen and have joined the router; we wait for that line (bounded)
instead of sleeping. Every output line goes to a log file and, for the
foreground stack, to the console with the process name in front.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

_COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[31m"]
_RESET = "\033[0m"


def die_with_parent() -> None:
    """preexec_fn: SIGTERM the child when the process that started it dies.

    Children run in their own sessions (so a Ctrl-C reaches them through us,
    in order); without this, a killed test run or stack would leave them behind.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


#: Every port ``free_port`` handed out in this process.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """An unused loopback port, for processes that cannot listen on port 0.

    Free only until someone binds it. Test runs side by side (``scripts/test``'s
    engine matrix) each get their own ``ESTROM_TEST_PORTS`` range (``low-high``,
    below the kernel's ephemeral ports), so they are never handed the same one.
    """
    span = os.environ.get("ESTROM_TEST_PORTS", "")
    low, high = (int(part) for part in span.split("-")) if span else (0, 0)
    for _ in range(200):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("127.0.0.1", random.randint(low, high) if span else 0))
            port = int(s.getsockname()[1])
            # Never the same port twice in one process: an engine binds its ports seconds after
            # they were chosen, and a router chosen meanwhile must not be handed one of them.
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                return port
    raise RuntimeError(f"no free port in ESTROM_TEST_PORTS={span}" if span else "no free port")


def listening_pids(port: int) -> set[int]:
    """The processes that hold a TCP socket listening on ``port`` (any local address).

    Read from ``/proc``: only processes we may inspect show up, which always
    includes our own children, the ones this question is about.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            next(rows)  # the header
            for row in rows:
                fields = row.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{inode}]")
    pids: set[int] = set()
    if not inodes:
        return pids
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        pids.add(int(entry.name))
                        break
    return pids


def listens_in_group(port: int, pgid: int) -> bool:
    """Whether a process of group ``pgid`` (a child started in its own session) listens on ``port``.

    A port that answers may be another process's that bound it first: two
    parallel test runs can be handed the same free port, and both routers
    serve the same page.
    """
    for pid in listening_pids(port):
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pgid:
                return True
    return False


def wait_for_port(host: str, port: int, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process died before {host}:{port} opened")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return
        time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not open within {timeout:.0f}s")


def wait_for_page(url: str, marker: bytes, timeout: float, alive: Callable[[], bool]) -> None:
    """Wait until ``url`` answers 200 with ``marker`` in its body, failing at once if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process died before {url} answered")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200 and marker in response.read():
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer with {marker!r} within {timeout:.0f}s")


class ManagedProcess:
    """A child in its own process group whose output is captured line by line."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log_path: Path,
        echo: bool = False,
        color: int = 0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.echo = echo
        self.color = _COLORS[color % len(_COLORS)] if sys.stdout.isatty() else ""
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_info: dict[str, Any] | None = None
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        self.ready_info = None
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log = self.log_path.open("ab", buffering=0)
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.process.stdout, log, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, log, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: IO[bytes], log: IO[bytes], is_stdout: bool) -> None:
        for raw in iter(stream.readline, b""):
            log.write(raw)
            if is_stdout and not self._ready.is_set():
                with contextlib.suppress(ValueError):
                    msg = json.loads(raw)
                    if isinstance(msg, dict) and msg.get("event") == "ready":
                        self.ready_info = msg
                        self._ready.set()
            if self.echo:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                sys.stdout.write(f"{self.color}{self.name:>7}{_RESET if self.color else ''} | {line}\n")
                sys.stdout.flush()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Wait for the ready line, failing at once if the process exits first."""
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if not self.alive():
                raise RuntimeError(f"{self.name} exited before ready; see {self.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready within {timeout:.0f}s; see {self.log_path}")
        assert self.ready_info is not None
        return self.ready_info

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        for t in self._threads:
            t.join(5)
        return proc.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
