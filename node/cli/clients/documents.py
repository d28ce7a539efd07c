"""``hygeia client ehr publish`` and ``hygeia client ehr fetch``: documents through a node.

Both speak to the node's document exchange (docs/document-exchange.md) with
requests signed by a member's key (``node.api.remote.signed_request``).

``publish`` (the custodian): reads a FHIR resource's JSON text exactly as the
file holds it (UTF-8), checks it is a resource, draws a fresh 32-byte salt and
signs the ``record.anchor`` of ``SHA-256(salt || JCS(text))``; the node keeps
text and salt in its encrypted store and submits the anchor. The command waits
for the anchor's commit (as every submitting command does) and prints the
publish answer with the anchor's status; it exits 1 on a refusal (``code:
message``) or when the ledger rejects the anchor.

``fetch`` (any member): looks the version up on chain (its record, custodian,
commitment), commits an access ticket unless one is given (``access.log`` under
a consent, or ``access.emergency``), fetches the document sealed to the member's
key, opens it and checks it against the anchored commitment before writing the
text, byte for byte as published, to ``--out`` (mode 0600, atomically, never
over an existing file without ``--force``). It prints a one-line JSON summary;
every refusal is ``code: message`` on stderr and exit status 1.
"""

from __future__ import annotations

import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Final, NoReturn
from urllib.parse import quote

import click

from node.api.remote import ClientError, signed_request
from node.cli import options
from node.cli.clients import common
from node.core.hexstr import HEX64
from node.core.keys import KeyFileError, SigningKey, load_key, public_key_hex
from node.core.secretfile import SecretFileError, write_secret
from node.exchange.canonical import (
    MAX_RESOURCE_BYTES,
    SALT_BYTES,
    CanonicalJSONError,
    commitment,
    parse_fhir,
)
from node.exchange.payload import PayloadError, open_fetch_answer
from node.ledger.domains.ehr import EMERGENCY_REASONS, PURPOSES

__all__ = ["fetch", "publish", "read_resource"]

# a publish carries up to 16 MB of text, a fetch's sealed answer more, and a relayed
# fetch may wait 20 s for the custodian: more than request_json's 10 s
HTTP_TIMEOUT_S: Final = 120.0
# the pauses before asking again after a 503 custodian-behind (the custodian's
# chain has not reached the ticket's block yet), in seconds
BEHIND_RETRY_DELAYS_S: Final[tuple[float, ...]] = (0.5, 1.0, 2.0, 4.0)


def _refuse(code: str, message: str) -> NoReturn:
    """End the command: ``code: message`` on stderr, exit status 1."""
    common.fail(f"{code}: {message}")


def _refused(exc: ClientError) -> NoReturn:
    """End the command with a node's refusal (its code and message when it gave them)."""
    if exc.code is not None and exc.detail is not None:
        _refuse(exc.code, exc.detail)
    common.fail(str(exc))


def _patient_pubkey(hex_: str | None, key_file: Path | None) -> str:
    """The patient's public key from ``--patient HEX`` or ``--patient-key FILE``."""
    if (hex_ is None) == (key_file is None):
        common.fail("give exactly one of --patient HEX or --patient-key FILE")
    if key_file is not None:
        try:
            return public_key_hex(load_key(key_file))
        except KeyFileError as exc:
            common.fail(str(exc))
    assert hex_ is not None
    if not HEX64.fullmatch(hex_.lower()):
        common.fail("--patient must be 64 hex characters")
    return hex_.lower()


def read_resource(path: Path) -> tuple[str, dict[str, Any]]:
    """A FHIR resource file's exact text (UTF-8, no newline translation) and the
    resource it parses to; a file that is not one ends the command with the code
    the node would refuse it with."""
    try:
        if path.stat().st_size > MAX_RESOURCE_BYTES:
            _refuse("too-large", f"{path}: a resource's text is at most {MAX_RESOURCE_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        common.fail(f"cannot read {path}: {exc.strerror or exc}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse("bad-json", f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if text.startswith("\ufeff"):
        _refuse("bad-json", f"{path} starts with a byte order mark; save it as UTF-8 without one")
    try:
        return text, parse_fhir(text)
    except CanonicalJSONError as exc:
        _refuse(exc.code, f"{path}: {exc}")


def _next_version(
    api: str, record_id: str, version: int | None, replaces: str | None
) -> tuple[int, str | None]:
    """``--version`` and ``--replaces``, by default the record's next version and the
    latest one's id (as ``record-anchor`` does)."""
    if version is not None:
        return version, replaces
    latest = common.find(api, f"/ehr/records/{quote(record_id, safe='')}")
    if latest is None:
        return 1, replaces
    return int(latest["version"]) + 1, replaces or str(latest["version_id"])


# ----------------------------------------------------------------- publish
@click.command(name="publish")
@options.api(options.API_URL_HELP)
@options.key("The custodian's member key file.")
@click.option(
    "--fhir",
    type=options.EXISTING_FILE,
    required=True,
    help="The FHIR resource (JSON, UTF-8): published exactly as the file holds it.",
)
@click.option("--record-id", required=True, help="The record's id (no personal data).")
@click.option("--patient", help="The patient's public key (64 hex).")
@click.option("--patient-key", type=options.EXISTING_FILE, help="Or the patient's key file.")
@click.option("--type", "type_", help="FHIR resource type or LOINC code (default: resourceType).")
@click.option("--version", type=int, help="Version number (default: the next one).")
@click.option("--replaces", help="The previous version's id (default: the latest version's).")
@options.no_wait()
@options.commit_timeout()
def publish(
    api: str,
    key_file: Path,
    fhir: Path,
    record_id: str,
    patient: str | None,
    patient_key: Path | None,
    type_: str | None,
    version: int | None,
    replaces: str | None,
    no_wait: bool,
    timeout: float,
) -> None:
    """Publish a FHIR resource through the node and anchor it (record.anchor).

    The resource's text and a fresh salt go to the node (kept in its encrypted
    store, served only under a committed access); the chain gets the commitment
    SHA-256(salt || JCS(resource)). Prints the version id; exits 1 on a refusal.
    """
    pubkey = _patient_pubkey(patient, patient_key)
    text, resource = read_resource(fhir)
    key = common.load_signing_key(key_file)
    salt = secrets.token_bytes(SALT_BYTES)
    try:
        committed = commitment(salt, text).hex()
    except CanonicalJSONError as exc:
        _refuse(exc.code, f"{fhir}: {exc}")
    base = api.rstrip("/")
    try:
        version, replaces = _next_version(base, record_id, version, replaces)
        body: dict[str, Any] = {
            "record_id": record_id,
            "patient": pubkey,
            "type": type_ or str(resource["resourceType"]),
            "commitment": committed,
            "version": version,
        }
        if replaces is not None:
            body["replaces"] = replaces
        anchor = common.build_signed(base, key, "record.anchor", body)
        request = {"resource": text, "salt": salt.hex(), "anchor": anchor.obj}
        payload = json.dumps(request, ensure_ascii=False, separators=(",", ":")).encode()
        _, answer = signed_request(
            "POST", f"{base}/v1/documents", payload, key, timeout=HTTP_TIMEOUT_S
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("hash"), str):
            common.fail(f"{base}/v1/documents: the answer is not a publish answer: {answer!r}")
        result = common.wait_for_commit(base, answer["hash"], 0 if no_wait else timeout)
    except ClientError as exc:
        _refused(exc)
    common.echo({**answer, **result})
    if common.is_rejected(result):
        sys.exit(1)


# ----------------------------------------------------------------- fetch
def _commit_ticket(
    api: str, key_file: Path, tx_type: str, body: dict[str, Any], timeout: float
) -> str:
    """Submit an access (``access.log`` or ``access.emergency``) and wait for it:
    its hash once committed with status ok; otherwise the command ends."""
    try:
        result = common.submit_signed(api, key_file, tx_type, body, wait=timeout)
    except ClientError as exc:
        _refused(exc)
    tx_hash = str(result["hash"])
    if common.is_rejected(result):
        inner = result.get("result") or {}
        code = str(inner.get("code") or "ticket-rejected")
        _refuse(code, f"{inner.get('message', 'rejected')} ({tx_type} {tx_hash} rejected)")
    if result["status"] != "committed":
        _refuse(
            "ticket-pending",
            f"{tx_type} {tx_hash} is not committed after {timeout:g} s; "
            f"fetch later with --access {tx_hash}",
        )
    click.echo(f"access ticket {tx_hash} committed at height {result.get('height')}", err=True)
    return tx_hash


def _fetch_sealed(url: str, key: SigningKey) -> Any:
    """The answer of the signed ``GET url``, asked again (freshly signed) after a
    ``503 custodian-behind`` as long as ``BEHIND_RETRY_DELAYS_S`` lasts."""
    delays = list(BEHIND_RETRY_DELAYS_S)
    while True:
        try:
            _, answer = signed_request("GET", url, None, key, timeout=HTTP_TIMEOUT_S)
            return answer
        except ClientError as exc:
            if exc.code != "custodian-behind" or not delays:
                _refused(exc)
            delay = delays.pop(0)
            click.echo(f"custodian-behind: {exc.detail}; asking again in {delay:g} s", err=True)
            time.sleep(delay)


@click.command(name="fetch")
@options.api(options.API_URL_HELP)
@options.key("The requesting member's key file.")
@click.option(
    "--version",
    "version_id",
    required=True,
    help="The version's id (the hash of its record.anchor, 64 hex).",
)
@click.option("--access", "ticket", help="A committed access ticket (its transaction's hash).")
@click.option(
    "--purpose",
    type=click.Choice(PURPOSES),
    help="Or log an access (access.log) for this purpose, under --consent.",
)
@click.option("--consent", "consent_id", help="The consent id of --purpose (64 hex).")
@click.option(
    "--emergency",
    "reason",
    type=click.Choice(EMERGENCY_REASONS),
    help="Or break glass for this reason (access.emergency).",
)
@click.option("--minutes", type=int, default=60, show_default=True, help="The break-glass window.")
@click.option(
    "--out", type=options.FILE, required=True, help="Where to write the resource (mode 0600)."
)
@click.option("--force", is_flag=True, help="Replace --out if it exists.")
@options.commit_timeout("Seconds to wait for the access ticket's commit.")
def fetch(
    api: str,
    key_file: Path,
    version_id: str,
    ticket: str | None,
    purpose: str | None,
    consent_id: str | None,
    reason: str | None,
    minutes: int,
    out: Path,
    force: bool,
    timeout: float,
) -> None:
    """Fetch a version of a record from its custodian, checked against the chain.

    Under an access ticket: --access TICKET, or one committed first with
    --purpose P --consent ID (access.log) or --emergency REASON (access.emergency).
    Writes the resource exactly as published to --out; exits 1 on any refusal.
    """
    version_id = version_id.lower()
    if not HEX64.fullmatch(version_id):
        _refuse("unknown-version", "a version id is 64 hex characters")
    modes = (ticket is not None, purpose is not None or consent_id is not None, reason is not None)
    if sum(modes) != 1:
        common.fail(
            "give exactly one of --access TICKET, --purpose P --consent ID or --emergency REASON"
        )
    if (purpose is None) != (consent_id is None):
        common.fail("--purpose and --consent go together")
    if ticket is not None:
        ticket = ticket.lower()
        if not HEX64.fullmatch(ticket):
            common.fail("--access must be a transaction hash (64 hex characters)")
    if not force and (out.exists() or out.is_symlink()):
        _refuse("out-exists", f"{out} already exists; refusing to overwrite it (use --force)")
    key = common.load_signing_key(key_file)
    base = api.rstrip("/")

    version = common.find(base, f"/ehr/versions/{version_id}")
    if version is None:
        _refuse("unknown-version", f"no record version has the id {version_id}")
    record_id = str(version["record_id"])
    if version.get("erased") is not None:
        _refuse("erased", f"record {record_id} was erased")
    if ticket is None:
        if reason is not None:
            body: dict[str, Any] = {
                "record_id": record_id,
                "reason": reason,
                "duration_ms": minutes * 60_000,
            }
            ticket = _commit_ticket(base, key_file, "access.emergency", body, timeout)
        else:
            body = {"record_id": record_id, "purpose": purpose, "consent_id": consent_id}
            ticket = _commit_ticket(base, key_file, "access.log", body, timeout)

    answer = _fetch_sealed(f"{base}/v1/documents/{version_id}?access={ticket}", key)
    if not isinstance(answer, dict):
        _refuse("bad-answer", "the node's answer is not a JSON object")
    try:
        document = open_fetch_answer(
            key,
            answer,
            version_id=version_id,
            expected_commitment=bytes.fromhex(str(version["commitment"])),
        )
    except PayloadError as exc:
        _refuse(exc.code, exc.message)
    except ValueError as exc:  # the chain's answer for the version is not one
        _refuse("bad-version", f"the node's version {version_id} is unusable: {exc}")
    data = document.text.encode("utf-8")
    try:
        write_secret(out, data, force=force, what="output file")
    except SecretFileError as exc:
        _refuse("out-exists" if out.exists() else "cannot-write", str(exc))
    except OSError as exc:
        common.fail(f"cannot write {out}: {exc.strerror or exc}")
    summary = {
        "version_id": version_id,
        "record_id": record_id,
        "ticket": ticket,
        "bytes": len(data),
    }
    click.echo(json.dumps(summary, sort_keys=True))
