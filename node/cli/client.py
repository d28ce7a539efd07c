"""``hygeia client ...`` and ``hygeia proof verify`` (``hygeia status`` is node/cli/status.py).

The client builds and signs transactions locally with a key file and submits
them to a node's client API. A file to anchor is hashed locally: its bytes
never leave the machine, only the SHA-256 does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from node.api.remote import ClientError
from node.cli import options
from node.cli.clients import GROUPS
from node.cli.clients.common import echo, fail, get, sha256_file, submit_signed
from node.cli.registry import add_commands
from node.core.hexstr import is_hex
from node.core.proof import ProofError, verify_proof
from node.setup.genesis import GenesisError, load_genesis


@click.group(name="client")
def client() -> None:
    """Build, sign and submit transactions; query a node."""


@client.command(name="anchor")
@options.tx_options()
@click.option("--digest", help="The SHA-256 (64 lowercase hex) of the document.")
@click.option(
    "--file",
    "file_",
    type=options.EXISTING_FILE,
    help="A document to hash locally (its bytes never leave this machine).",
)
@click.option("--kind", help="A short label, e.g. lab-report (no personal data).")
def anchor(
    api: str,
    key_file: Path,
    digest: str | None,
    file_: Path | None,
    kind: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Anchor a document's SHA-256 digest (data.anchor)."""
    if (digest is None) == (file_ is None):
        fail("give exactly one of --digest HEX or --file PATH")
    if file_ is not None:
        digest = sha256_file(file_)
    assert digest is not None
    if not is_hex(digest, 32):
        fail("--digest must be 64 lowercase hex characters")
    body: dict[str, Any] = {"digest": digest}
    if kind:
        body["kind"] = kind
    try:
        result = submit_signed(api, key_file, "data.anchor", body, wait=timeout if wait else 0)
    except ClientError as exc:
        fail(str(exc))
    echo({**result, "digest": digest})
    if result["status"] == "rejected":
        sys.exit(1)


@client.command(name="tx")
@click.argument("tx_hash")
@options.api()
def tx_status(tx_hash: str, api: str) -> None:
    """Show a transaction's status and result; exit status 1 when the node does not
    know it (``unknown``)."""
    answer = get(api, f"/txs/{tx_hash}")
    echo({"hash": tx_hash, **answer})
    if answer.get("status") == "unknown":
        sys.exit(1)


@client.command(name="validators")
@click.option(
    "--height",
    type=click.IntRange(min=0),
    help="The set that certifies this height (default: the next block's).",
)
@options.api()
def validator_set(height: int | None, api: str) -> None:
    """Show the validator set (GET /v1/validators): its epoch, members, node keys and
    addresses, and a committed change not in force yet (pending)."""
    echo(get(api, "/validators", {"height": None if height is None else str(height)}))


@client.command(name="proof")
@click.argument("tx_hash")
@options.api()
@click.option("--out", type=options.FILE, help="Write it here.")
def proof_fetch(tx_hash: str, api: str, out: Path | None) -> None:
    """Fetch the inclusion proof of a committed transaction."""
    text = json.dumps(get(api, f"/proofs/{tx_hash}"), indent=2, sort_keys=True)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        click.echo(f"proof written to {out}")


@click.group(name="proof")
def proof() -> None:
    """Inclusion proofs."""


@proof.command(name="verify")
@click.argument("proof_file", type=options.EXISTING_FILE)
@click.option(
    "--genesis",
    "genesis_file",
    type=options.EXISTING_FILE,
    required=True,
    help="The consortium's genesis.json (its validator set).",
)
@click.option(
    "--require-accepted",
    is_flag=True,
    help="Exit 2 unless the proof certifies that the ledger accepted the transaction "
    "(a rejected one, or a proof without a certified outcome).",
)
def proof_verify(proof_file: Path, genesis_file: Path, require_accepted: bool) -> None:
    """Check an inclusion proof offline and say what it proves: that the transaction
    was committed and, when the proof carries it (format /3, once a checkpoint above
    the block is stable), whether the ledger accepted or rejected it."""
    try:
        genesis = load_genesis(genesis_file)
        data = json.loads(proof_file.read_text(encoding="utf-8"))
        result = verify_proof(data, genesis.chain_id, genesis.validator_public_keys())
    except (GenesisError, ProofError) as exc:
        click.echo(f"INVALID: {exc}", err=True)
        sys.exit(1)
    except json.JSONDecodeError as exc:
        click.echo(f"INVALID: {proof_file} is not JSON ({exc})", err=True)
        sys.exit(1)
    click.echo(f"VALID: {result.statement()}")
    outcome = result.outcome
    if outcome is None:
        click.echo(
            "outcome: not certified in this proof (fetch it again once a checkpoint above "
            f"height {result.height} is stable)"
        )
    else:
        click.echo(f"outcome: {outcome.statement()} (certified by checkpoint {outcome.checkpoint})")
        if not outcome.accepted and outcome.message:
            click.echo(f"reason: {outcome.message}")
    if require_accepted and (outcome is None or not outcome.accepted):
        sys.exit(2)


add_commands(client, GROUPS)

COMMANDS: tuple[click.Command, ...] = (client, proof)
