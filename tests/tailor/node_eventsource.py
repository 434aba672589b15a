"""Node's stock WHATWG EventSource (as in browsers) on a tailor SSE URL, for tests.

``eventsource_client.js`` prints one JSON line per thing the EventSource
sees (open, error, and each event with its ``lastEventId``); a thread reads
them as they come, and tests wait on them with bounded timeouts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("eventsource_client.js")


def node_available() -> bool:
    return shutil.which("node") is not None


class NodeEventSource:
    """One EventSource in a Node process; it reconnects by itself, as a browser's does."""

    def __init__(self, url: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            ["node", "--experimental-eventsource", "--no-warnings", str(SCRIPT), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True, name="node-eventsource").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._seen:
                self.events.append(json.loads(line))
                self._seen.notify_all()

    def count(self, kind: str) -> int:
        with self._seen:
            return sum(event["type"] == kind for event in self.events)

    def wait(self, predicate: Callable[[NodeEventSource], bool], what: str, timeout: float = 30.0) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"{what} not seen in {timeout}s: {self.events[-10:]!r}")

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self._seen:
            return [event for event in self.events if event["type"] == kind]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)
