"""Reading ``ESTROM_*`` variables: one reader per kind of value, one error for a value we cannot use.

``common/config.py`` (``Settings``, ``CliSettings``) and ``QuotaLimits``
(``common/access/quotas.py``) read every variable through these, so a value is
taken, refused and explained the same way wherever it is read. Unset, empty
or blank is the default.

Standard library only: the router's worker reads its quotas with it too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeVar


class ConfigError(ValueError):
    """A variable is set to something we cannot use; raised at start-up, never later."""


N = TypeVar("N", int, float)


def number(env: Mapping[str, str], name: str, default: N, minimum: N, hint: str = "") -> N:
    """``name`` as ``default``'s type (int or float), at least ``minimum``; ``hint`` ends each refusal."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}{hint}, got {raw!r}") from None
    if math.isnan(value) or value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}{hint}, got {value}")
    return value


def integer(env: Mapping[str, str], name: str, default: int, minimum: int = 0, hint: str = "") -> int:
    return number(env, name, default, minimum, hint)


def real(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0, hint: str = "") -> float:
    return number(env, name, float(default), float(minimum), hint)


def optional_integer(env: Mapping[str, str], name: str, minimum: int) -> int | None:
    """Unset or empty: None (the engine's own default)."""
    if not env.get(name, "").strip():
        return None
    return integer(env, name, 0, minimum)


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off``; unset or empty: ``default``."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")


def text(env: Mapping[str, str], name: str, default: str) -> str:
    """The value as set; unset or empty: ``default``."""
    raw = env.get(name)
    return default if raw is None or raw == "" else raw


def listed(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped; unset: none."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def one_of(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (read in lower case); unset or empty: ``default``."""
    value = text(env, name, default).lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be {'|'.join(allowed)}, not {value!r}")
    return value
