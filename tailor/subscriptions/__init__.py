"""The router side: one WAMP subscription per sid, shared by every stream of it, resumable by event id."""
