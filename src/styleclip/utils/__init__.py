"""Small helpers shared across styleclip (files, memory, devices)."""
