"""Readers for every checkpoint format styleclip understands, detected from the file's bytes."""
