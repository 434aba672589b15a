"""``ESTROM_ENGINE_URL``: one engine node URL, or several nodes of one cluster, comma-separated.

Pure (no client imported), so configuration checks and the CLI can use it.
"""

from __future__ import annotations


def parse_urls(text: str) -> list[str]:
    """``"http://a:9200, http://b:9200/"`` to ``["http://a:9200", "http://b:9200"]``; ValueError if none or not http(s)."""
    urls = [u.strip().rstrip("/") for u in text.split(",") if u.strip()]
    if not urls:
        raise ValueError("ESTROM_ENGINE_URL names no engine node")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"ESTROM_ENGINE_URL must list http(s):// URLs, not {url!r}")
    return urls
