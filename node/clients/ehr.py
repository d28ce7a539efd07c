"""``hygeia client ehr ...``: Health records: patients, record anchors, consent, audited access."""

from __future__ import annotations

import click


@click.group(name="ehr")
def group() -> None:
    """Health records: patients, record anchors, consent, audited access."""
