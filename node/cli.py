"""The ``hygeia`` command: one click group; each area registers its own subgroup here."""

from __future__ import annotations

import click

from node.sim.cli import sim


@click.group()
@click.version_option(package_name="hygeia")
def main() -> None:
    """Hygeia: a permissioned PBFT blockchain node for healthcare consortia."""


main.add_command(sim)


if __name__ == "__main__":
    main()
