"""``hygeia keys master|derive|link|verify-link``: pairwise patient keys (core/pairwise.py).

``master`` makes a master secret file; ``derive`` writes the key file of one
relationship (``--context custodian:<member id>``, ``insurer:<member id>``, ...)
and prints its public key; ``link`` signs a link statement with two of the
patient's keys; ``verify-link`` checks one offline, and that it links the keys,
purpose and nonce the verifier expects. docs/privacy.md says what stays linkable.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from node.cli import options
from node.core.codec import CodecError, parse_json
from node.core.hexstr import HEX64
from node.core.keys import KeyFileError, load_key, public_key_hex, save_key
from node.core.pairwise import (
    PairwiseError,
    derive_key,
    load_master,
    make_link,
    new_master,
    save_master,
    verify_link,
)

__all__ = ["COMMANDS"]

MAX_LINK_BYTES = 4096


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@click.command(name="master")
@click.option("--out", required=True, type=options.FILE, help="The master file (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def master(out: Path, force: bool) -> None:
    """Make a patient's master secret: every pairwise key derives from it (keep it safe)."""
    try:
        save_master(out, new_master(), force=force)
    except PairwiseError as exc:
        raise _fail(str(exc)) from None
    click.echo(f"wrote {out} (mode 0600)", err=True)


@click.command(name="derive")
@click.option("--master", "master_file", required=True, type=options.EXISTING_FILE)
@click.option(
    "--context",
    required=True,
    help="The relationship, <kind>:<id>: custodian:<member id>, insurer:<member id>, ...",
)
@click.option("--out", required=True, type=options.FILE, help="The key file (mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def derive(master_file: Path, context: str, out: Path, force: bool) -> None:
    """Write the pairwise key file of CONTEXT; print its public key (64 hex)."""
    try:
        key = derive_key(load_master(master_file), context)
        save_key(out, key, force=force)
    except (PairwiseError, KeyFileError) as exc:
        raise _fail(str(exc)) from None
    click.echo(public_key_hex(key))
    click.echo(f"wrote {out} (mode 0600)", err=True)


@click.command(name="link")
@click.option("--key-a", required=True, type=options.EXISTING_FILE, help="One key file.")
@click.option("--key-b", required=True, type=options.EXISTING_FILE, help="The other key file.")
@click.option(
    "--purpose", required=True, help="What and whom the link is for, e.g. claims:acme-health."
)
@click.option("--nonce", help="The verifier's challenge (64 hex); default: 32 random bytes.")
@click.option("--out", type=options.FILE, help="Write the link here (default: stdout).")
def link(key_a: Path, key_b: Path, purpose: str, nonce: str | None, out: Path | None) -> None:
    """Sign a link statement with two of the patient's keys: whoever holds it can tell
    the two keys are one patient's, and nothing more."""
    if nonce is not None and not HEX64.fullmatch(nonce):
        raise click.BadParameter("must be 64 lowercase hex", param_hint="--nonce")
    try:
        made = make_link(
            load_key(key_a),
            load_key(key_b),
            purpose,
            None if nonce is None else bytes.fromhex(nonce),
        )
    except (PairwiseError, KeyFileError) as exc:
        raise _fail(str(exc)) from None
    text = json.dumps(made, indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}", err=True)


@click.command(name="verify-link")
@click.argument("link_file", type=options.EXISTING_FILE)
@click.option("--key", "keys", multiple=True, help="A key the link must join (64 hex; repeat).")
@click.option("--purpose", help="The purpose the link must state.")
@click.option("--nonce", help="The nonce (challenge) the link must state.")
def verify_link_cmd(
    link_file: Path, keys: tuple[str, ...], purpose: str | None, nonce: str | None
) -> None:
    """Check a link statement offline: both signatures, and the keys, purpose and nonce
    asked for. Prints the statement; exits 1 if it does not hold."""
    raw = link_file.read_bytes()
    try:
        if len(raw) > MAX_LINK_BYTES:
            raise PairwiseError(f"{link_file} is over {MAX_LINK_BYTES} bytes; not a link")
        statement = verify_link(parse_json(raw))
    except (CodecError, PairwiseError) as exc:
        raise _fail(f"{link_file}: not a valid link: {exc}") from None
    joined = {statement["key_a"], statement["key_b"]}
    for key in keys:
        if key.lower() not in joined:
            raise _fail(f"the link does not join key {key}")
    if purpose is not None and statement["purpose"] != purpose:
        raise _fail(f"the link's purpose is {statement['purpose']!r}, not {purpose!r}")
    if nonce is not None and statement["nonce"] != nonce.lower():
        raise _fail(f"the link's nonce is {statement['nonce']}, not {nonce}")
    click.echo(json.dumps({"valid": True, **statement}, indent=2, sort_keys=True))


COMMANDS: tuple[click.Command, ...] = (master, derive, link, verify_link_cmd)
