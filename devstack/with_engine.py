"""``python -m devstack.with_engine SCRIPT [ARGS]``: run a script against a fresh engine.

Starts an engine on free ports in a temporary directory, runs the script
with ``--engine-url <url>`` appended, and stops the engine afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from devstack.engine import EngineNode, ensure_engine
from devstack.processes import free_port


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="estrom-engine-") as tmp:
        state = Path(tmp)
        state.chmod(0o755)
        node = EngineNode(
            home=ensure_engine(),
            state_dir=state,
            http_port=free_port(),
            transport_port=free_port(),
            heap="1g",
        )
        print(f"[with_engine] starting engine on {node.url}", file=sys.stderr, flush=True)
        node.start(log_path=state / "engine.log")
        try:
            node.wait_ready(timeout=180)
            return subprocess.call([sys.executable, *argv, "--engine-url", node.url])
        finally:
            node.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
