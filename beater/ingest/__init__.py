"""The ingest endpoint: bodies read, documents batched per index for matching and publishing."""
