"""The click options that several ``hygeia`` commands share, each declared once.

Every option here is a factory of a click decorator. Where commands word an
option's help differently (the help texts are what users read in ``--help``),
the factory takes the help text; other attributes a command needs (``multiple``,
a ``metavar``, not required) are passed through as click attributes. The path
types say once what kind of path an option takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

HOME_ENVVAR = "HYGEIA_HOME"

# ------------------------------------------------------------------ path types
FILE = click.Path(dir_okay=False, path_type=Path)
"""A file path that need not exist yet (an output, a key to create)."""
EXISTING_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)
"""A file that must exist (a document to hash, a key to sign with)."""
DIRECTORY = click.Path(file_okay=False, path_type=Path)
"""A directory path that need not exist yet (a node home)."""
EXISTING_DIRECTORY = click.Path(file_okay=False, exists=True, path_type=Path)
"""A directory that must exist (a testnet made by ``hygeia testnet init``)."""

# ------------------------------------------------------------------ help texts
API_HELP = "The node's client API."
API_URL_HELP = "The node's client API URL."
API_EXAMPLE_HELP = "The node's client API, e.g. http://127.0.0.1:26657."
KEY_HELP = "The member's signing key file."
HOME_HELP = "The node's home directory."
COMMIT_TIMEOUT_HELP = "Seconds to wait for the commit."


def api(help_: str = API_HELP, *decls: str, **attrs: Any) -> Callable[[F], F]:
    """``--api URL``, a node's client API (required unless ``attrs`` say otherwise)."""
    return click.option("--api", *decls, **{"required": True, "help": help_, **attrs})


def key(help_: str = KEY_HELP) -> Callable[[F], F]:
    """``--key FILE`` (as ``key_file``): the key file a transaction is signed with."""
    return click.option("--key", "key_file", type=FILE, required=True, help=help_)


def home(help_: str | None = HOME_HELP, **attrs: Any) -> Callable[[F], F]:
    """``--home DIR``, a node home; by default required and read from ``HYGEIA_HOME``
    too (shown in the help). ``attrs`` override that, e.g. ``envvar=None``."""
    settings: dict[str, Any] = {
        "type": DIRECTORY,
        "required": True,
        "envvar": HOME_ENVVAR,
        "show_envvar": True,
        "help": help_,
    }
    return click.option("--home", **{**settings, **attrs})


def wait() -> Callable[[F], F]:
    """``--wait/--no-wait``: wait until the submitted transaction is committed (the
    default, as every ``hygeia client`` group does), or return at once."""
    return click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait until the transaction is committed, or submit and return at once.",
    )


def no_wait() -> Callable[[F], F]:
    """``--no-wait``: submit and return at once (for commands that wait by default)."""
    return click.option("--no-wait", is_flag=True, help="Submit and return at once.")


def commit_timeout(help_: str = COMMIT_TIMEOUT_HELP) -> Callable[[F], F]:
    """``--timeout SECONDS`` to wait for a transaction's commit (default 30)."""
    return click.option("--timeout", default=30.0, show_default=True, help=help_)


def limit(help_: str | None = None) -> Callable[[F], F]:
    """``--limit N`` of a listing query (default 100)."""
    return click.option("--limit", type=int, default=100, show_default=True, help=help_)


def settings() -> Callable[[F], F]:
    """``--set SECTION.KEY=VALUE`` (as ``settings``), repeatable: configuration overrides."""
    return click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="SECTION.KEY=VALUE",
        help="Override one configuration key, as a command-line flag would (repeatable).",
    )


def tx_options(key_help: str = KEY_HELP) -> Callable[[F], F]:
    """``--api``, ``--key`` (as ``key_file``), ``--wait`` and ``--timeout`` of a command
    that submits one transaction (``node.cli.clients.common.submit_tx``)."""
    return compose(
        api(API_EXAMPLE_HELP), key(key_help), wait(), commit_timeout("Seconds for --wait.")
    )


def compose(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` as if stacked in this order (top first),
    so that the options appear in ``--help`` in this order."""

    def decorate(fn: F) -> F:
        for decorator in reversed(decorators):
            fn = decorator(fn)
        return fn

    return decorate
