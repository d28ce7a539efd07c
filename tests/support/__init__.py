"""Helpers every test layer shares: waiting for a condition, holding free ports."""
