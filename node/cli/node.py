"""Node set-up commands: ``init``, ``keys new``, ``testnet init``, ``config show|check``.

``node/cli/main.py`` adds ``COMMANDS`` to the ``hygeia`` group (node/cli/registry.py).
Other areas may add subcommands to the ``testnet``, ``keys`` and ``config``
groups (e.g. ``testnet start``).

User errors (bad configuration, existing keys, malformed genesis, unwritable
paths) are one line on stderr (``Error: ...``) and exit code 1; bad usage is
click's message and exit code 2 (node/cli/errors.py). No traceback for either.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.cli import options
from node.cli.errors import user_errors
from node.setup.config import (
    default_config,
    load_config,
    parse_overrides,
    render_toml,
)
from node.setup.genesis import load_genesis
from node.setup.home import adopt_database, check_home, generate_key_file, init_home
from node.setup.testnet import (
    DEFAULT_BASE_PORT,
    DEFAULT_CHAIN_ID,
    MAX_VALIDATORS,
    TESTNET_FILE,
    testnet_init,
)

__all__ = ["COMMANDS", "config", "init", "keys", "testnet"]


# ------------------------------------------------------------------ init
@click.command(name="init")
@options.home()
@click.option(
    "--name", default=None, help="Node name in logs and status [default: the home's name]."
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace an existing node key (the node gets a new identity) and admin token.",
)
@click.option(
    "--adopt-database",
    "adopt",
    is_flag=True,
    help="For a home made by an older hygeia: check its database against genesis.json "
    "and mark it (or create it if the data directory is empty). Nothing else is written.",
)
@user_errors
def init(home: Path, name: str | None, force: bool, adopt: bool) -> None:
    """Create a node home: node key (0600), admin token (0600), config.toml, database.

    An existing node key is never overwritten without --force; an existing
    config.toml is always kept, and so is a data directory that holds anything.
    The database records the genesis hash of genesis.json if it is already
    there, otherwise at the first `hygeia start`.
    """
    if adopt:
        if force:
            raise click.UsageError("--adopt-database and --force do not go together")
        cfg = load_config(home)
        height = adopt_database(cfg)
        click.echo(
            f"database {cfg.data_dir} (height {height}) is marked as this home's, genesis "
            f"hash {load_genesis(cfg.genesis_path).genesis_hash_hex()}"
        )
        return
    node_id = init_home(home, name=name, force=force)
    cfg = load_config(home)
    click.echo(f"initialised node home {cfg.home}")
    click.echo(f"  node id      {node_id}")
    click.echo(f"  config       {cfg.config_path}")
    click.echo(f"  node key     {cfg.node_key_path} (mode 0600)")
    click.echo(f"  admin token  {cfg.admin_token_path} (mode 0600)")
    click.echo(f"  data         {cfg.data_dir}")
    if not cfg.genesis_path.exists():
        click.echo(
            f"next: put the consortium's genesis.json at {cfg.genesis_path}, then run "
            f"`hygeia config check --home {home}`"
        )


# ------------------------------------------------------------------ keys
@click.group(name="keys")
def keys() -> None:
    """Ed25519 key files."""


@keys.command(name="new")
@click.option(
    "--out",
    required=True,
    type=options.FILE,
    help="Where to write the key file (mode 0600).",
)
@click.option("--force", is_flag=True, help="Replace an existing file.")
@user_errors
def keys_new(out: Path, force: bool) -> None:
    """Make a new Ed25519 key file; print its public key (64 hex) on stdout."""
    public = generate_key_file(out, force=force)
    click.echo(public)
    click.echo(f"wrote {out} (mode 0600)", err=True)


# ------------------------------------------------------------------ testnet
@click.group(name="testnet")
def testnet() -> None:
    """Local multi-validator networks on loopback."""


@testnet.command(name="init")
@click.option(
    "--validators",
    type=click.IntRange(1, MAX_VALIDATORS),
    required=True,
    help="Number of validator nodes.",
)
@click.option(
    "--out",
    "out_dir",
    type=options.DIRECTORY,
    required=True,
    help="Directory for the node homes and testnet.json.",
)
@click.option(
    "--base-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_BASE_PORT,
    show_default=True,
    help="Node i uses P+10i (p2p), P+10i+1 (client API), P+10i+2 (admin API).",
)
@click.option("--chain-id", default=DEFAULT_CHAIN_ID, show_default=True, help="The chain id.")
@click.option("--force", is_flag=True, help="Replace an existing testnet in --out.")
@user_errors
def testnet_init_cmd(
    validators: int, out_dir: Path, base_port: int, chain_id: str, force: bool
) -> None:
    """Create N validator homes sharing one genesis.json, and DIR/testnet.json."""
    doc = testnet_init(
        out_dir, validators=validators, base_port=base_port, chain_id=chain_id, force=force
    )
    click.echo(f"testnet {doc['chain_id']}: {len(doc['nodes'])} validators")
    for node in doc["nodes"]:
        click.echo(
            f"  {node['name']:<8} {node['node_id'][:16]}  p2p {node['p2p']}  "
            f"api {node['api']}  admin {node['admin']}"
        )
    click.echo(f"wrote {Path(out_dir).expanduser().absolute() / TESTNET_FILE}")


# ------------------------------------------------------------------ config
@click.group(name="config")
def config() -> None:
    """Inspect and check a node's configuration."""


@config.command(name="show")
@options.home(required=False)
@click.option(
    "--defaults", is_flag=True, help="Show the defaults, ignoring config.toml and the environment."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["toml", "json"]),
    default="toml",
    show_default=True,
)
@options.settings()
@user_errors
def config_show(home: Path | None, defaults: bool, fmt: str, settings: tuple[str, ...]) -> None:
    """Print the effective configuration (flags > environment > config.toml > defaults).

    Secrets are redacted; in TOML, each value not at its default says where it came from.
    """
    if defaults:
        cfg = default_config(home or ".")
    elif home is None:
        raise click.UsageError("--home is required (or --defaults)")
    else:
        cfg = load_config(home, overrides=parse_overrides(settings))
        for warning in cfg.warnings:
            click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps(cfg.effective_config_redacted(), indent=2))
    else:
        click.echo(render_toml(cfg), nl=False)


@config.command(name="check")
@options.home()
@options.settings()
@user_errors
def config_check(home: Path, settings: tuple[str, ...]) -> None:
    """Check a home without starting the node: config.toml, key, token, genesis, and the
    database against genesis.json (nothing is written; a running node's database is
    checked through its marker only).

    Exit code 0 when the node could start (warnings on stderr), 1 with the reason otherwise.
    """
    cfg = load_config(home, overrides=parse_overrides(settings))
    report = check_home(cfg, start=False)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    genesis = report.genesis
    assert genesis is not None
    if report.validator_index is None:
        role = "not a validator (a full node)"
    else:
        role = f"validator {report.validator_index} of {genesis.n}"
    database = "" if report.height is None else f", database at height {report.height}"
    click.echo(
        f"ok: {cfg.config_path}: node {cfg.node.name} ({report.node_id[:16]}), "
        f"chain {genesis.chain_id}, {role}{database}"
    )


COMMANDS: tuple[click.Command, ...] = (init, keys, testnet, config)
