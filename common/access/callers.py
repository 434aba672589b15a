"""Who a caller is for a quota: the reader, or the anonymous caller's address (behind trusted proxies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from common.access.readers import ANONYMOUS


def quota_key(identity_name: str, address: str) -> str:
    """What a quota counts against: the reader, or the anonymous caller's address."""
    return f"{ANONYMOUS}@{address}" if identity_name == ANONYMOUS else identity_name


def client_address(peer: str, forwarded_for: str | None, trusted: Iterable[str]) -> str:
    """The caller's address: the transport peer, or X-Forwarded-For's when the peer is a trusted proxy.

    Walks X-Forwarded-For from the right, past trusted proxies, to the first
    address nobody trusted wrote: the left-most entries are whatever the
    client chose to send.
    """
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in n for n in networks)

    if not forwarded_for or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def peer_host(peer: str) -> str:
    """The host of a crossbar/Twisted peer string (``tcp4:127.0.0.1:5000``, ``tcp6:[::1]:5000``)."""
    kind, _, rest = peer.partition(":")
    if kind not in ("tcp4", "tcp6", "tcp"):
        return peer
    host, _, _port = rest.rpartition(":")
    return host.strip("[]") or rest
