"""``fields=``: each hit's ``_source`` cut down to the fields a client asked for.

The same patterns go to the engine for a backfill (``_source`` includes), so
a live hit and a stored one look alike: dotted paths select inside objects
(and inside every object of an array), ``*`` matches any run of characters,
dots included, as the engine's source filtering does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Source = dict[str, Any]


def compile_fields(patterns: tuple[str, ...]) -> Callable[[Source], Source]:
    """A function from a ``_source`` to its selected fields (a new dict; the input is not modified)."""
    raise NotImplementedError
