"""``python -m tailor``: run one tailor until SIGTERM / Ctrl-C."""

from __future__ import annotations

from common.service import run_service
from tailor.app import Tailor

if __name__ == "__main__":
    run_service("tailor", Tailor)
