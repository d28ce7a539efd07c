"""``hygeia client <domain> ...`` command groups, one module per ledger domain."""

from __future__ import annotations

import click

from node.cli.clients import claims, ehr, governance, nodes, supply, trials


@click.group(name="record")
def record() -> None:
    """Health-record anchors (the same commands as `hygeia client ehr record-*`)."""


# `hygeia client record anchor --fhir RESOURCE.json`, the spelling the health-records
# issue uses, is the same command object as `hygeia client ehr record-anchor`
record.add_command(ehr.record_anchor, name="anchor")

GROUPS: tuple[click.Group, ...] = (
    record,
    governance.group,
    ehr.group,
    supply.group,
    trials.group,
    claims.group,
    nodes.group,
)
