"""``hygeia client supply ...``: Drug supply chain: commission, ship, receive, dispense, verify."""

from __future__ import annotations

import click


@click.group(name="supply")
def group() -> None:
    """Drug supply chain: commission, ship, receive, dispense, verify."""
