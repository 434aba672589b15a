"""crossbar's and autobahn's debug log arguments, formatted only when a line is written.

On every message they route, crossbar and autobahn pass highlighted values
(``hltype(...)``, ``hlval(...)``, ``pformat(...)``) to ``log.debug`` and
``log.trace``. Python evaluates arguments before the logger can drop the line,
so with the router at ``warn`` a quarter of its CPU per published event went
into colouring text that nobody reads (docs/performance.md).

:func:`install` rebinds those names, in the modules on the message path only,
to wrappers that return a :class:`LogArg`. A LogArg remembers the call and makes
it when the line is rendered (``format``, ``str``, ``repr``), so a line at debug
reads exactly as before. A name is listed only where the module uses it solely
as a keyword argument of a log call; tests/unit/test_lazy_log_args.py checks
that in the installed sources, so an upgrade that uses one elsewhere fails it.

Standard library only: the router worker imports this from its own virtualenv.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

#: autobahn's modules on every WAMP message's path (router and services), and the names rebound.
AUTOBAHN: Mapping[str, tuple[str, ...]] = {
    "autobahn.wamp.websocket": ("hlval",),
    "autobahn.websocket.protocol": ("hltype", "hlval"),
    "autobahn.twisted.websocket": ("hltype", "hlval"),
}
#: crossbar's (the router worker only).
CROSSBAR: Mapping[str, tuple[str, ...]] = {
    "crossbar.router.router": ("hlid", "hltype", "hlval", "pformat"),
    "crossbar.router.broker": ("hlflag", "hlid", "hltype"),
    "crossbar.router.dealer": ("hlflag", "hlid", "hltype"),
    "crossbar.router.session": ("hl", "hlid", "hltype", "hlval", "pformat"),
}


class LogArg:
    """``fn(*args, **kwargs)``, called only when a log line shows it."""

    __slots__ = ("_args", "_fn", "_kwargs")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self._fn = fn
        self._args = args
        self._kwargs = kwargs

    def value(self) -> Any:
        return self._fn(*self._args, **self._kwargs)

    def __format__(self, spec: str) -> str:
        return format(self.value(), spec)

    def __str__(self) -> str:
        return str(self.value())

    def __repr__(self) -> str:
        return repr(self.value())


def lazy(fn: Callable[..., Any]) -> Callable[..., LogArg]:
    """``fn``, deferred: the wrapper returns a LogArg instead of calling it."""

    def deferred(*args: Any, **kwargs: Any) -> LogArg:
        return LogArg(fn, args, kwargs)

    deferred.__wrapped__ = fn  # type: ignore[attr-defined]
    deferred.__name__ = getattr(fn, "__name__", "deferred")
    return deferred


_DEFERRED_CODE = lazy(len).__code__


def is_lazy(obj: object) -> bool:
    """Whether ``obj`` is a wrapper made by :func:`lazy`."""
    return getattr(obj, "__code__", None) is _DEFERRED_CODE


def install(modules: Mapping[str, tuple[str, ...]]) -> int:
    """Rebind the listed names of the listed modules (imported here) to lazy wrappers.

    Idempotent; returns how many names it rebound now. A module or name that
    is missing raises: an upgrade moved the code, and the list must follow it.
    """
    rebound = 0
    for module_name, names in modules.items():
        module = importlib.import_module(module_name)
        for name in names:
            current = getattr(module, name)  # AttributeError: the list is stale
            if not is_lazy(current):
                setattr(module, name, lazy(current))
                rebound += 1
    return rebound
