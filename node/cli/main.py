"""The ``hygeia`` command: one click group; every area's ``COMMANDS`` join it (see registry.py)."""

from __future__ import annotations

import click

from node.cli import bench as cli_bench
from node.cli import client as cli_client
from node.cli import node as cli_node
from node.cli import ops as cli_ops
from node.cli import run as cli_run
from node.cli import sim as cli_sim
from node.cli import status as cli_status
from node.cli.registry import add_commands


@click.group()
@click.version_option(package_name="hygeia")
def main() -> None:
    """Hygeia: a permissioned PBFT blockchain node for healthcare consortia."""


add_commands(
    main,
    cli_node.COMMANDS,  # init, keys, testnet (run.py adds `testnet start`), config
    cli_run.COMMANDS,  # start
    cli_client.COMMANDS,  # client, proof
    cli_status.COMMANDS,  # status
    cli_ops.COMMANDS,  # backup, restore, export
    cli_sim.COMMANDS,  # sim
    cli_bench.COMMANDS,  # bench
)
