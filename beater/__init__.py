"""The beater: ingest over HTTP, percolate in batches, publish matches over WAMP."""
