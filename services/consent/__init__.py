"""Consent registry: consents, refusals, blocks, legal bases and sharing decisions."""
