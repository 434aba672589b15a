"""Publishing matches to the router: one acknowledged WAMP event per subscription per batch."""
