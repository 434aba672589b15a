"""The tailor: endless HTTP tail of a subscription."""
