"""The beater's HTTP plumbing: each request routed once from its request line, bodies bounded and
decoded, requests forwarded to the engine, and the drain both faces share on SIGTERM."""
