"""How a ``hygeia`` command reports an error its user can fix: one line, exit code 1.

``user_errors`` wraps a command so that the set-up errors (bad configuration,
existing keys, malformed genesis, unwritable paths) become ``Error: ...`` on
stderr and exit code 1, never a traceback; bad usage stays click's message
and exit code 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import click

from node.ops.logs import LogConfigError
from node.setup.config import ConfigError
from node.setup.genesis import GenesisError
from node.setup.home import HomeError
from node.setup.testnet import TestnetError

P = ParamSpec("P")
R = TypeVar("R")

USER_ERRORS = (ConfigError, GenesisError, HomeError, TestnetError, LogConfigError)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can fix into one ``Error: ...`` line and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            raise click.ClickException(f"{where}{e.strerror or e}") from None

    return wrapper
