"""``python -m beater``: run one beater until SIGTERM / Ctrl-C."""

from __future__ import annotations

import sys

import txaio
from twisted.internet import task
from twisted.internet.defer import ensureDeferred

from beater.app import Beater
from common.config import ConfigError, Settings
from common.engine import UnsupportedEngine
from common.logs import start_logging


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"beater: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    start_logging("beater", settings.log_level, settings.log_format)
    txaio.use_twisted()
    txaio.set_global_log_level("debug" if settings.log_level == "debug" else "warn")

    async def run(reactor_: object) -> None:
        from twisted.internet.defer import Deferred

        beater = Beater(settings, reactor_)
        try:
            await beater.start()
        except UnsupportedEngine as exc:
            print(f"beater: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        await Deferred()  # run until the reactor stops

    task.react(lambda r: ensureDeferred(run(r)))


if __name__ == "__main__":
    main()
