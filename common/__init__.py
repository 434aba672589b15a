"""Pieces shared by the beater and the tailor: settings, engine client, wire formats."""
