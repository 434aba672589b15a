"""Ingest bodies read within the limits of a beater with default settings (``Settings``)."""

from __future__ import annotations

from typing import Any

from beater.ingest import body
from common.config import Settings

DEFAULTS = Settings()


def parse(
    raw: bytes,
    content_type: str | None,
    max_depth: int = DEFAULTS.ingest_max_depth,
    max_docs: int = DEFAULTS.ingest_max_docs,
    *,
    fast: bool = True,
) -> body.IngestBody:
    """``parse_ingest_body`` within the default limits, unless the test names its own."""
    return body.parse_ingest_body(raw, content_type, max_depth, max_docs, fast=fast)


def document_problem(doc: Any) -> str | None:
    """``document_problem`` within the default nesting limit."""
    return body.document_problem(doc, DEFAULTS.ingest_max_depth)
