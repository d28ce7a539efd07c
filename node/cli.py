"""The ``hygeia`` command: one click group; each area registers its own subgroup here."""

from __future__ import annotations

import click

from node import cli_node, cli_ops, cli_status
from node.bench.cli import bench
from node.cli_client import COMMANDS as CLIENT_COMMANDS
from node.cli_run import start
from node.sim.cli import sim


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


if __name__ == "__main__":
    main()
