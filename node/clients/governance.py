"""``hygeia client gov ...``: Governance: members, roles, key rotation (gov.propose, gov.vote)."""

from __future__ import annotations

import click


@click.group(name="gov")
def group() -> None:
    """Governance: members, roles, key rotation (gov.propose, gov.vote)."""
