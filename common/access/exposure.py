"""Whether a service is reachable beyond this machine, which decides what "no access file" may mean.

Without an access file a service is open (anonymous reads, anonymous
writes) only on loopback, or when ``ESTROM_ANONYMOUS_READS=all`` /
``ESTROM_ANONYMOUS_WRITES=all`` say an open side is intended: a default
never means "everyone".
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from common.access.errors import ReadersError


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a listen interface) is reachable from this machine only."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_interface(endpoint: str) -> str:
    """The interface of a Twisted endpoint string (``tcp:8082:interface=127.0.0.1``); "" is every one."""
    parts = re.split(r"(?<!\\):", endpoint)
    for part in parts[1:]:
        if part.startswith("interface="):
            return part[len("interface=") :].replace("\\:", ":")
    return ""


def exposed_without_opt_in(env: Mapping[str, str], variable: str, interfaces: Iterable[str]) -> list[str]:
    """The interfaces beyond loopback, unless ``variable=all`` says an open side is intended ([] then)."""
    opt_in = env.get(variable, "").strip().lower()
    if opt_in not in ("", "all"):
        raise ReadersError(f"{variable} must be 'all' or unset, not {opt_in!r}")
    if opt_in == "all":
        return []
    return [i or "every interface" for i in interfaces if not is_loopback(i)]
