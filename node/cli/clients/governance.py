"""``hygeia client gov ...``: members, validators, proposals, votes and key rotation.

Transactions are signed locally with ``--key`` (the member's key file) and sent
to ``--api``; queries read the node's ``/v1/members`` and ``/v1/proposals``.
A key given on the command line (``--member-key``, ``--add``, ``--remove``,
``--node-key``, ``--new-node-key``) is either 64 lowercase hex (a public key) or
the path of a key file (e.g. a node's ``node_key.json``), whose public key is
used: the private part never leaves this machine. A ``--p2p`` address is checked
here with the node's own rule (``node.net.addr.parse_host_port``) before signing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import echo as _echo
from node.cli.clients.common import fail as _fail
from node.cli.clients.common import get as _get
from node.core.hexstr import HEX64
from node.core.keys import KeyFileError, load_key, public_key_hex, sign
from node.ledger.domains.governance import rotation_proof_message
from node.net.addr import parse_host_port

HOUR_MS = 3_600_000


def _public_key(value: str) -> str:
    if HEX64.fullmatch(value):
        return value
    try:
        return public_key_hex(load_key(value))
    except KeyFileError as exc:
        _fail(f"{value!r} is neither 64 lowercase hex nor a key file: {exc}")


def _p2p(value: str) -> str:
    try:
        parse_host_port(value)
    except ValueError as exc:
        _fail(f"--p2p: {exc}")
    return value


_tx_options = options.tx_options("The signing key file of an active member.")


_proposal_options = options.compose(
    _tx_options,
    click.option(
        "--expires-in",
        "expires_in",
        type=click.IntRange(1, 720),
        default=72,
        show_default=True,
        help="Hours of block time before the proposal expires (at most 720 = 30 days).",
    ),
    click.option("--note", help="A short reason (at most 140 chars, no personal data)."),
)


def _propose(
    api: str,
    key_file: Path,
    action: dict[str, Any],
    expires_in: int,
    note: str | None,
    wait: bool,
    timeout: float,
) -> None:
    now = _get(api, "/members").get("block_time_ms") or int(time.time() * 1000)
    body: dict[str, Any] = {"action": action, "expires_ms": now + expires_in * HOUR_MS}
    if note:
        body["note"] = note
    common.submit_tx(api, key_file, "gov.propose", body, wait, timeout)


@click.group(name="gov")
def group() -> None:
    """Governance: members, validators, proposals and votes (2/3 of active members), key
    rotation."""


@group.command(name="propose-add-member")
@click.option("--id", "member_id", required=True, help="The new member's id.")
@click.option("--name", required=True, help="The institution's name.")
@click.option("--role", "roles", multiple=True, required=True, help="A role (repeatable).")
@click.option(
    "--member-key", "keys", multiple=True, required=True, help="Its public key (repeatable)."
)
@_proposal_options
def propose_add_member(
    member_id: str,
    name: str,
    roles: tuple[str, ...],
    keys: tuple[str, ...],
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose a new member institution (gov.propose add-member)."""
    action = {
        "type": "add-member",
        "id": member_id,
        "name": name,
        "roles": list(roles),
        "keys": [_public_key(k) for k in keys],
    }
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-suspend")
@click.option("--id", "member_id", required=True, help="The member to suspend.")
@_proposal_options
def propose_suspend(
    member_id: str,
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose suspending a member: its keys then sign nothing (gov.propose suspend-member)."""
    action = {"type": "suspend-member", "id": member_id}
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-reactivate")
@click.option("--id", "member_id", required=True, help="The suspended member.")
@_proposal_options
def propose_reactivate(
    member_id: str,
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose reactivating a suspended member (gov.propose reactivate-member)."""
    action = {"type": "reactivate-member", "id": member_id}
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-rotate-keys")
@click.option("--id", "member_id", required=True, help="The member whose keys change.")
@click.option("--add", "add", multiple=True, help="A key to add (repeatable).")
@click.option("--remove", "remove", multiple=True, help="A key to remove (repeatable).")
@_proposal_options
def propose_rotate_keys(
    member_id: str,
    add: tuple[str, ...],
    remove: tuple[str, ...],
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose adding and/or removing keys of a member in one step (gov.propose rotate-keys)."""
    if not add and not remove:
        _fail("give --add and/or --remove")
    action = {
        "type": "rotate-keys",
        "id": member_id,
        "add": [_public_key(k) for k in add],
        "remove": [_public_key(k) for k in remove],
    }
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-add-validator")
@click.option("--member", "member_id", required=True, help="The member that runs the node.")
@click.option("--name", required=True, help="The validator's name, e.g. node4.")
@click.option(
    "--node-key", "node_key", required=True, help="Its node key (64 hex or node_key.json)."
)
@click.option("--p2p", required=True, help="HOST:PORT where the other validators dial it.")
@_proposal_options
def propose_add_validator(
    member_id: str,
    name: str,
    node_key: str,
    p2p: str,
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose a new validator, last in the set (gov.propose add-validator); it joins at
    the epoch boundary after the proposal executes."""
    action = {
        "type": "add-validator",
        "member": member_id,
        "name": name,
        "node_key": _public_key(node_key),
        "p2p": _p2p(p2p),
    }
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-remove-validator")
@click.option(
    "--node-key", "node_key", required=True, help="The validator's node key (64 hex or file)."
)
@_proposal_options
def propose_remove_validator(
    node_key: str,
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose removing a validator (gov.propose remove-validator); it leaves at the epoch
    boundary after the proposal executes."""
    action = {"type": "remove-validator", "node_key": _public_key(node_key)}
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="propose-replace-validator-key")
@click.option(
    "--node-key", "node_key", required=True, help="The validator's node key now (hex or file)."
)
@click.option(
    "--new-node-key", "new_node_key", required=True, help="Its new node key (hex or file)."
)
@click.option("--p2p", required=True, help="HOST:PORT where it is dialled with the new key.")
@_proposal_options
def propose_replace_validator_key(
    node_key: str,
    new_node_key: str,
    p2p: str,
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    expires_in: int,
    note: str | None,
) -> None:
    """Propose a validator's new node key and address; it keeps its place, name and member
    (gov.propose replace-validator-key)."""
    action = {
        "type": "replace-validator-key",
        "node_key": _public_key(node_key),
        "new_node_key": _public_key(new_node_key),
        "p2p": _p2p(p2p),
    }
    _propose(api, key_file, action, expires_in, note, wait, timeout)


@group.command(name="vote")
@click.argument("proposal_id")
@click.option("--approve/--reject", "approve", required=True, help="Your vote.")
@_tx_options
def vote(
    proposal_id: str, approve: bool, api: str, key_file: Path, wait: bool, timeout: float
) -> None:
    """Vote on an open proposal; a later vote of your member replaces this one (gov.vote)."""
    body = {"proposal": proposal_id, "approve": approve}
    common.submit_tx(api, key_file, "gov.vote", body, wait, timeout)


@group.command(name="rotate-key")
@click.option(
    "--new-key",
    "new_key_file",
    type=options.FILE,
    required=True,
    help="The new key file (it signs the proof of possession locally).",
)
@_tx_options
def rotate_key(new_key_file: Path, api: str, key_file: Path, wait: bool, timeout: float) -> None:
    """Self-service: add NEW-KEY to your member; --key retires on finish-rotation."""
    try:
        old = public_key_hex(load_key(key_file))
        new_key = load_key(new_key_file)
    except KeyFileError as exc:
        _fail(str(exc))
    chain_id = _get(api, "/info")["chain_id"]
    members = _get(api, "/members")["members"]
    owner = next((m["id"] for m in members if old in m["keys"]), None)
    if owner is None:
        _fail("--key is not a key of any member")
    new_hex = public_key_hex(new_key)
    proof = sign(new_key, rotation_proof_message(chain_id, owner, old, new_hex)).hex()
    body = {"new_key": new_hex, "proof": proof}
    common.submit_tx(api, key_file, "member.rotate_key", body, wait, timeout)


@group.command(name="finish-rotation")
@_tx_options
def finish_rotation(api: str, key_file: Path, wait: bool, timeout: float) -> None:
    """Signed by the NEW key: retire the old key of your pending rotation."""
    common.submit_tx(api, key_file, "member.finish_rotation", {}, wait, timeout)


@group.command(name="proposal")
@click.argument("proposal_id")
@options.api()
def proposal(proposal_id: str, api: str) -> None:
    """Show a proposal: action, votes, tally and status."""
    _echo(_get(api, f"/proposals/{proposal_id}"))


@group.command(name="proposals")
@click.option(
    "--status",
    type=click.Choice(["open", "executed", "defeated", "failed", "expired"]),
    help="Only proposals with this status.",
)
@options.api()
def proposals(status: str | None, api: str) -> None:
    """List proposals, newest first."""
    _echo(_get(api, "/proposals", {"status": status}))


@group.command(name="members")
@click.argument("member_id", required=False)
@click.option("--status", type=click.Choice(["active", "suspended"]), help="Filter the list.")
@options.api()
def members(member_id: str | None, status: str | None, api: str) -> None:
    """List members (or show one): roles, keys, status, pending rotation."""
    if member_id:
        _echo(_get(api, f"/members/{member_id}"))
    else:
        _echo(_get(api, "/members", {"status": status}))
