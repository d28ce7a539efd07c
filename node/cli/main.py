"""The ``hygeia`` command: one click group; each area registers its own subgroup here."""

from __future__ import annotations

import click

from node.cli import node as cli_node
from node.cli import ops as cli_ops
from node.cli import status as cli_status
from node.cli.bench import bench
from node.cli.client import COMMANDS as CLIENT_COMMANDS
from node.cli.run import start
from node.cli.sim import sim


@click.group()
@click.version_option(package_name="hygeia")
def main() -> None:
    """Hygeia: a permissioned PBFT blockchain node for healthcare consortia."""


main.add_command(sim)
main.add_command(start)
main.add_command(bench)
cli_node.register(main)  # init, keys, testnet (with `testnet start`), config
for command in (*CLIENT_COMMANDS, *cli_status.COMMANDS, *cli_ops.COMMANDS):  # client, proof;
    main.add_command(command)  # status; backup, restore, export
