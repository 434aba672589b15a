"""Who is writing, and where they may write: one gate for ingest, bulk and pass-through."""
