"""Readers at the tailor: who is asking, may they read the target, how much; judged again while they read."""
