"""``hygeia client node ...``: register a member's non-validator nodes on chain.

``register`` and ``unregister`` sign ``node.register`` / ``node.unregister``
with the member's key file (``--key``) and submit them to a node's client API
(``--api``); ``--wait`` waits until the transaction is committed. They print the
outcome as JSON and exit 1 when the ledger rejected the transaction (the code
says why: ``key-taken``, ``bad-role``, ``too-many-nodes``, ``unknown-node``,
``not-owner``; docs/transactions.md). ``list`` and ``show`` print the registry
as JSON. The node key is the public key ``hygeia init`` prints as the NODE ID.
"""

from __future__ import annotations

from pathlib import Path

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import echo as _echo
from node.cli.clients.common import fail as _fail
from node.core.hexstr import HEX64
from node.ledger.domains.nodes import MAX_LIST, NODE_ROLES
from node.net.addr import parse_host_port

_node_key = click.option(
    "--node-key", required=True, help="The node's public key (64 hex): its NODE ID."
)


def _key(value: str) -> str:
    """The node key in the chain's spelling (lower case), or the command ends."""
    key = value.strip().lower()
    if not HEX64.fullmatch(key):
        _fail("--node-key must be 64 hex characters (the node's NODE ID)")
    return key


@click.group(name="node")
def group() -> None:
    """Non-validator nodes of your member, registered on chain (observers)."""


@group.command()
@options.tx_options()
@_node_key
@click.option("--p2p", required=True, help="The node's p2p address, HOST:PORT ([IPv6]:PORT).")
@click.option(
    "--role", type=click.Choice(NODE_ROLES), default="observer", show_default=True, help="Its role."
)
def register(
    api: str, key_file: Path, wait: bool, timeout: float, node_key: str, p2p: str, role: str
) -> None:
    """Register a node of the signing member (node.register)."""
    try:
        parse_host_port(p2p)
    except ValueError as exc:
        _fail(f"--p2p: {exc}")
    body = {"node_key": _key(node_key), "p2p": p2p, "role": role}
    common.submit_tx(api, key_file, "node.register", body, wait, timeout)


@group.command()
@options.tx_options()
@_node_key
def unregister(api: str, key_file: Path, wait: bool, timeout: float, node_key: str) -> None:
    """Remove a node the signing member registered (node.unregister)."""
    common.submit_tx(api, key_file, "node.unregister", {"node_key": _key(node_key)}, wait, timeout)


@group.command(name="list")
@options.api()
@click.option("--member", help="Only this member's nodes (a member id).")
@click.option("--after", help="The last node key of the previous page.")
@click.option(
    "--limit", type=click.IntRange(1, MAX_LIST), help=f"At most this many (1..{MAX_LIST})."
)
def list_nodes(api: str, member: str | None, after: str | None, limit: int | None) -> None:
    """Registered nodes in node-key order, all or one member's."""
    params = {"member": member, "after": after, "limit": None if limit is None else str(limit)}
    _echo(common.get(api, "/nodes", params))


@group.command()
@options.api()
@_node_key
def show(api: str, node_key: str) -> None:
    """One registered node (exit 1 if that key is not registered)."""
    _echo(common.get(api, f"/nodes/{_key(node_key)}"))
