"""What every endless response shares: its pacing for slow clients, its wire format, its client's presence."""
