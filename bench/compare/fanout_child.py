"""Section 4: the fan-out benchmark in a child process, with a stack of its own.

A child rather than a call: fan-out needs a fresh tailor and a client process
that does nothing else, and its figures come back as the JSON it writes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.harness import log
from devstack.router import REPO


def fanout(cfg: argparse.Namespace) -> dict[str, Any] | None:
    """Section 4: ``bench/fanout.py`` in a child process (it starts its own stack), if it exists."""
    if not (REPO / "bench" / "fanout.py").exists():
        log("fan-out: skipped (bench/fanout.py absent)")
        return None
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
        out = Path(tmp.name)
    cmd = [sys.executable, "-m", "bench.fanout", "--json", str(out)] + (["--quick"] if cfg.quick else [])
    log(f"fan-out: {' '.join(cmd[1:])}")
    try:
        proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr, timeout=cfg.fanout_timeout, check=False)
        if proc.returncode != 0:
            log(f"!!! fan-out exited {proc.returncode}")
            return None
        return json.loads(out.read_text())
    except (subprocess.TimeoutExpired, OSError, ValueError) as exc:
        log(f"!!! fan-out failed: {exc}")
        return None
    finally:
        out.unlink(missing_ok=True)
