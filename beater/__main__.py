"""``python -m beater``: run one beater until SIGTERM / Ctrl-C."""

from __future__ import annotations

from beater.app import Beater
from common.service import run_service

if __name__ == "__main__":
    run_service("beater", Beater)
