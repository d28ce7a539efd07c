"""``hygeia client trials ...``: clinical trial registration, consent, data, results."""

from __future__ import annotations

import click


@click.group(name="trials")
def group() -> None:
    """Clinical trials: registration, amendments, consent, data, results."""
