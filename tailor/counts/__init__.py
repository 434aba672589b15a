"""``GET /api/v0.1/counts``: hits counted per window, once per (sid, by, every); a past period (since=)."""
