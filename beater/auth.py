"""estrom's ingest token: ``Authorization: Bearer <ESTROM_INGEST_TOKEN>``."""

from __future__ import annotations

import hmac


def bearer_matches(header: bytes | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``, compared in constant time.

    Compared as bytes: ``hmac.compare_digest`` refuses non-ASCII strings, and
    a header may carry any byte.
    """
    scheme, _, value = (header or b"").strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(value.strip(), token.encode("ascii"))
