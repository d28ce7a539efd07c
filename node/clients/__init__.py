"""``hygeia client <domain> ...`` command groups, one module per ledger domain."""

from __future__ import annotations

import click

from node.clients import claims, ehr, governance, supply, trials

GROUPS: tuple[click.Group, ...] = (
    governance.group,
    ehr.group,
    supply.group,
    trials.group,
    claims.group,
)
