"""Which browser origins are the router's own page: the tailor's default CORS origins."""

from __future__ import annotations

from urllib.parse import urlsplit


def router_page_origins(router_url: str) -> str:
    """The origins of the router's page, from its WebSocket URL (``ws://127.0.0.1:8080/ws``).

    ``http://<host>:<port>`` (``https`` for ``wss``) under both loopback
    names, and under the URL's host when it is another name (``router`` in
    a compose network), as the router allows them on its WebSocket; a
    default port is left out, as browsers send the origin.
    """
    parts = urlsplit(router_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    host = parts.hostname or "127.0.0.1"
    try:
        port = parts.port
    except ValueError:
        port = None
    hosts = ["127.0.0.1", "localhost"]
    if host not in (*hosts, "0.0.0.0", "::"):
        hosts.append(host)
    shown = "" if port is None or port == {"http": 80, "https": 443}[scheme] else f":{port}"
    return ",".join(f"{scheme}://{h}{shown}" for h in hosts)
