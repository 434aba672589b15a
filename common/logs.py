"""Structured, quiet logs: one line per event, ``key=value`` text or JSON.

Services log through ``twisted.logger.Logger`` with an event name as the
format string and data as keywords (``log.info("ingest.rejected", index=...)``);
this observer turns each event into one line on stderr. Per-request chatter is
debug level, so the default (info) shows only lifecycle and trouble.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    globalLogBeginner,
)
from zope.interface import implementer

_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn, "error": LogLevel.error}


def _scalar(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\n'):
        return json.dumps(text)
    return text


@implementer(ILogObserver)
class LineObserver:
    """Render Twisted log events as single lines."""

    def __init__(self, stream: IO[str], fmt: str, service: str) -> None:
        self.stream = stream
        self.fmt = fmt
        self.service = service

    def __call__(self, event: dict[str, Any]) -> None:
        record: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(event.get("log_time", time.time()))) + "Z",
            "level": getattr(event.get("log_level"), "name", "info"),
            "service": self.service,
            "event": formatEvent(event),
        }
        for key, value in event.items():
            if not key.startswith("log_") and key not in ("format", "isError", "message", "system", "time"):
                record[key] = value
        failure = event.get("log_failure")
        if failure is not None:
            record["error"] = failure.getErrorMessage()
            record["traceback"] = failure.getTraceback()
        if self.fmt == "json":
            line = json.dumps(record, default=str)
        else:
            head = (
                f"{record.pop('ts')} {record.pop('level'):<5} {record.pop('service')} {record.pop('event')}"
            )
            tb = record.pop("traceback", None)
            line = " ".join([head, *(f"{k}={_scalar(v)}" for k, v in record.items())])
            if tb:
                line += "\n" + tb.rstrip()
        self.stream.write(line + "\n")
        self.stream.flush()


def start_logging(service: str, level: str = "info", fmt: str = "text") -> None:
    """Route all Twisted (and autobahn/txaio) logging through one filtered observer."""
    observer = FilteringLogObserver(
        LineObserver(sys.stderr, fmt, service),
        [LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
