"""The tailor: endless HTTP tail of a subscription (issue 3)."""
