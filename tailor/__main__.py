"""``python -m tailor``: run one tailor until SIGTERM / Ctrl-C."""

from __future__ import annotations

import sys

import txaio
from twisted.internet import task
from twisted.internet.defer import Deferred, ensureDeferred

from common.config import ConfigError, Settings
from common.engine import UnsupportedEngine
from common.logs import start_logging
from tailor.app import Tailor


def main() -> None:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"tailor: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    start_logging("tailor", settings.log_level, settings.log_format)
    txaio.use_twisted()
    txaio.set_global_log_level("debug" if settings.log_level == "debug" else "warn")

    async def run(reactor_: object) -> None:
        tailor = Tailor(settings, reactor_)
        try:
            await tailor.start()
        except UnsupportedEngine as exc:
            print(f"tailor: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        await Deferred()  # run until the reactor stops

    task.react(lambda r: ensureDeferred(run(r)))


if __name__ == "__main__":
    main()
