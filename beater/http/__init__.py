"""The beater's HTTP plumbing: request bodies bounded and decoded, requests forwarded to the engine."""
