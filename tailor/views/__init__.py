"""What each tail sees of its sid's hits: only some fields, in event-time order after a delay, sampled above a rate."""
