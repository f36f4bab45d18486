"""Readers of the raw extracts: find them, decode them, conform them, account for every row."""
