"""``GET /api/v0.1/docs``: a tail request answered with its sid's live hits, after a backfill."""
