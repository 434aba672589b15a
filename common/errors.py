"""Conditions that clear by themselves: unavailable now, retry later.

Every such condition (engine or router away, a publish not acknowledged,
the service shutting down) is a :class:`RetryLater`, raised where it is
found and answered in one place per face: over HTTP by ``Routes``
(common/http.py: ``503``, ``Retry-After``, ``{"error": "unavailable",
"reason": ...}``), over WAMP by the procedures' wrapper (common/wamp.py:
``com.estrom.error.unavailable`` with the reason). Refusals that will not
clear (a bad query, a full quota or queue: 4xx) are never one.

Standard library only: common/engine.py and common/wamp.py both build on it.
"""

from __future__ import annotations

#: Seconds a client is told to wait when nothing more precise is known (``ESTROM_RETRY_AFTER``).
DEFAULT_RETRY_AFTER = 2


class RetryLater(Exception):
    """Unavailable for now, for ``reason``: retry after ``retry_after`` seconds.

    ``retry_after`` None: the service's ``ESTROM_RETRY_AFTER``.
    """

    def __init__(self, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ShuttingDown(RetryLater):
    """This process is draining (SIGTERM): another one, or this one restarted, takes the retry."""

    def __init__(self, service: str, retry_after: int | None = None) -> None:
        super().__init__(
            f"the {service} is shutting down; retry (another {service}, or this one restarted)", retry_after
        )
