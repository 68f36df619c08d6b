"""Reliability scenarios 1-7 of docs/reliability.md over real processes, and the soak (8)."""
