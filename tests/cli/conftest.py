"""The ``estrom`` command run as a subprocess against the real stack.

The session's ``tailor`` comes from ``tests/conftest.py``; ``Cli`` runs
``python -m estrom_cli`` and hands its stdout and stderr lines to the test
as they are written, waited on with bounded timeouts.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from devstack.router import REPO
from devstack.settings import without_estrom


def cli_env(**extra: str) -> dict[str, str]:
    return without_estrom(os.environ) | {"PYTHONUNBUFFERED": "1", "NO_COLOR": "1"} | extra


def _as_from_a_terminal() -> None:
    """Give the command the SIGINT a shell prompt gives it.

    A suite started in the background of a script (``scripts/test &``, a CI
    step run with ``&``) inherits SIGINT *ignored*, and Python then installs
    no KeyboardInterrupt handler: the Ctrl-C tests would wait out their
    timeout. A user at a terminal never starts ``estrom`` that way.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    """One running ``estrom`` command; its output lines arrive on queues."""

    def __init__(self, *args: str, stdin: bytes | None = None, **env: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "estrom_cli", *args],
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            env=cli_env(**env),
            preexec_fn=_as_from_a_terminal,
        )
        self.stdout: queue.Queue[str | None] = queue.Queue()
        self.stderr: queue.Queue[str | None] = queue.Queue()
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        for stream, sink in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin)
            self.proc.stdin.close()

    @staticmethod
    def _pump(stream, sink: queue.Queue[str | None]) -> None:
        for raw in stream:
            sink.put(raw.decode().rstrip("\n"))
        sink.put(None)

    def _next(self, sink: queue.Queue[str | None], seen: list[str], timeout: float) -> str:
        try:
            line = sink.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"estrom {self.args}: no line within {timeout}s; so far {seen!r}") from None
        if line is None:
            sink.put(None)
            raise AssertionError(
                f"estrom {self.args}: output ended; so far {seen!r}; stderr {self.err_lines!r}"
            )
        seen.append(line)
        return line

    def line(self, timeout: float = 20.0) -> str:
        return self._next(self.stdout, self.out_lines, timeout)

    def err_line(self, timeout: float = 20.0) -> str:
        return self._next(self.stderr, self.err_lines, timeout)

    def wait_err(self, needle: str, timeout: float = 20.0) -> str:
        while True:
            line = self.err_line(timeout)
            if needle in line:
                return line

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout=timeout)
        for sink, seen in ((self.stdout, self.out_lines), (self.stderr, self.err_lines)):
            while (line := sink.get(timeout=timeout)) is not None:
                seen.append(line)
            sink.put(None)
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def cli() -> Iterator[type[Cli]]:
    """``cli("tail", ...)`` starts a command; every command still running is killed after the test."""
    started: list[Cli] = []

    def start(*args: str, stdin: bytes | None = None, **env: str) -> Cli:
        c = Cli(*args, stdin=stdin, **env)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
