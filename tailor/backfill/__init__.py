"""The stored documents before the live hits: ``n=`` paged under a budget, and the hand-over check."""
