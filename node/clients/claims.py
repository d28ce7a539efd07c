"""``hygeia client claims ...``: insurance policies, coverage, claims, settlement."""

from __future__ import annotations

import click


@click.group(name="claims")
def group() -> None:
    """Insurance: policies, coverage, pre-authorisation, claims, settlement."""
