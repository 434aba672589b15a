"""Matching: which registered queries each document of a batch matches (percolation)."""
