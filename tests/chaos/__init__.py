"""Jepsen-style fault suite for real hygeia processes (see README.md in this directory)."""
