"""How commands join the ``hygeia`` group: the one way to register them.

Every area module of ``node/cli`` (``node``, ``run``, ``client``, ``status``,
``ops``, ``sim``, ``bench``) declares its top-level commands and groups and
lists them in ``COMMANDS``; ``node/cli/main.py`` passes every area's
``COMMANDS`` to ``add_commands``. A subcommand of another area's group (such as
``testnet start`` in ``run.py``) is declared with that group's own decorator.
"""

from __future__ import annotations

from collections.abc import Iterable

import click


def add_commands(group: click.Group, *areas: Iterable[click.Command]) -> None:
    """Add the commands of each area (its ``COMMANDS``) to ``group``."""
    for commands in areas:
        for command in commands:
            group.add_command(command)
