"""Node set-up commands: ``init``, ``keys new``, ``testnet init``, ``config show|check``.

``keys master|derive|link|verify-link`` (a patient's pairwise keys) are in
``node/cli/keys_pairwise.py``.

``init --join NODE_ID@HOST:PORT --genesis GENESIS.json`` makes a home that joins a
running chain by state sync: genesis.json copied in, the peer in ``p2p.peers``
and ``sync.state_sync`` on (docs/state-sync.md).

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
from typing import Any

import click

from node.cli import options
from node.cli.errors import user_errors
from node.cli.keys_pairwise import COMMANDS as PAIRWISE_COMMANDS
from node.net.addr import WILDCARD_HOSTS, Peer, is_loopback_host, parse_host_port, parse_peer
from node.setup.config import (
    CONFIG_FILE,
    ConfigError,
    NodeConfig,
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
def _join_peer(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Peer | None:
    """``--join``: ``NODE_ID@HOST:PORT`` as ``p2p.peers`` entries are parsed."""
    if value is None:
        return None
    try:
        return parse_peer(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _home_genesis_exists(home: Path) -> bool:
    """Whether the home's genesis path (of its config.toml, if any) holds a file."""
    try:
        return load_config(home, require_file=False).genesis_path.exists()
    except ConfigError:
        return False  # init_home reports the broken config.toml


def _check_join_config(home: Path, peer: Peer) -> None:
    """An existing config.toml is kept by init: with --join it must already say so."""
    path = Path(home).expanduser() / CONFIG_FILE
    if not path.exists():
        return
    cfg = load_config(home, env={})  # the file itself, not this shell's environment
    missing = []
    if peer not in cfg.p2p.peers:
        missing.append(f'add "{peer}" to peers under [p2p]')
    if not cfg.sync.state_sync:
        missing.append("set state_sync = true under [sync]")
    if missing:
        raise click.ClickException(
            f"{path} exists and init keeps it, but it does not join through {peer.address}: "
            f"{' and '.join(missing)} (or move it away to have init write a new one), "
            "then run this command again"
        )


def _p2p_hint(cfg: NodeConfig) -> str:
    """This node's p2p address as others reach it, for the register hint."""
    host, port = parse_host_port(cfg.p2p.listen, allow_zero_port=True)
    if host in WILDCARD_HOSTS or is_loopback_host(host) or not port:
        return f"HOST:{port or 'PORT'}"
    return cfg.p2p.listen


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
@click.option(
    "--join",
    "join",
    metavar="NODE_ID@HOST:PORT",
    callback=_join_peer,
    help="Join an existing chain through this peer: config.toml lists it in [p2p] peers "
    "and sets [sync] state_sync = true (needs --genesis).",
)
@click.option(
    "--genesis",
    "genesis_file",
    type=options.EXISTING_FILE,
    help="The consortium's genesis.json, copied into the home (checked first; a different "
    "genesis.json already there is refused).",
)
@user_errors
def init(
    home: Path,
    name: str | None,
    force: bool,
    adopt: bool,
    join: Peer | None,
    genesis_file: Path | None,
) -> None:
    """Create a node home: node key (0600), admin token (0600), config.toml, database.

    An existing node key is never overwritten without --force; an existing
    config.toml is always kept, and so is a data directory that holds anything.
    The database records the genesis hash of genesis.json if it is already
    there, otherwise at the first `hygeia start`.

    With --join NODE_ID@HOST:PORT --genesis GENESIS.json the home is made to
    join a running chain by state sync (docs/state-sync.md): genesis.json is
    copied in, and config.toml dials that peer and restores the newest verified
    snapshot at the first start instead of replaying every block. An existing
    config.toml is kept only if it already lists the peer in [p2p] peers and
    sets [sync] state_sync = true; otherwise init refuses and says what to edit.
    --genesis alone copies genesis.json without the join settings.
    """
    if adopt:
        if force or join or genesis_file:
            raise click.UsageError(
                "--adopt-database goes with none of --force, --join and --genesis"
            )
        cfg = load_config(home)
        height = adopt_database(cfg)
        click.echo(
            f"database {cfg.data_dir} (height {height}) is marked as this home's, genesis "
            f"hash {load_genesis(cfg.genesis_path).genesis_hash_hex()}"
        )
        return
    if join is not None and genesis_file is None:
        raise click.UsageError("--join needs --genesis GENESIS.json (the chain's genesis)")
    settings: dict[str, Any] = {}
    if join is not None:
        _check_join_config(home, join)
        settings = {"p2p.peers": [str(join)], "sync.state_sync": True}
    had_genesis = genesis_file is not None and _home_genesis_exists(home)
    node_id = init_home(
        home, name=name, force=force, settings=settings, genesis_source=genesis_file
    )
    cfg = load_config(home)
    click.echo(f"initialised node home {cfg.home}")
    click.echo(f"  node id      {node_id}")
    click.echo(f"  config       {cfg.config_path}")
    click.echo(f"  node key     {cfg.node_key_path} (mode 0600)")
    click.echo(f"  admin token  {cfg.admin_token_path} (mode 0600)")
    click.echo(f"  data         {cfg.data_dir}")
    if genesis_file is not None:
        genesis = load_genesis(cfg.genesis_path)
        how = "already there, identical" if had_genesis else f"copied from {genesis_file}"
        click.echo(
            f"  genesis      {cfg.genesis_path} ({how}; chain {genesis.chain_id}, "
            f"genesis hash {genesis.genesis_hash_hex()})"
        )
    if join is not None:
        click.echo(f"  join peer    {join} ([p2p] peers)")
        click.echo("  state sync   on ([sync] state_sync = true)")
        click.echo(
            "next: register this node's key on chain, signed with your member's key: "
            f"`hygeia client node register --node-key {node_id} --p2p {_p2p_hint(cfg)} "
            "--api URL --key MEMBER_KEY.json --wait`; then "
            f"`hygeia start --home {home}` and `hygeia status --home {home} --wait-synced`"
        )
    elif not cfg.genesis_path.exists():
        click.echo(
            f"next: put the consortium's genesis.json at {cfg.genesis_path}, then run "
            f"`hygeia config check --home {home}`"
        )
    else:
        click.echo(f"next: `hygeia config check --home {home}`")


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


for _command in PAIRWISE_COMMANDS:  # master, derive, link, verify-link (keys_pairwise.py)
    keys.add_command(_command)


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
