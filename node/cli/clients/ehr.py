"""``hygeia client ehr ...``: Health records: patients, record anchors, consent, audited access.

Transactions are signed locally with a key file (a member's key, or a
patient's for consents) and submitted to a node. ``record-anchor --fhir``
computes the salted commitment of a FHIR resource locally:

    commitment = SHA-256(salt || canonical_json(resource))

with a fresh 32-byte salt written beside the resource (``RESOURCE.json.salt``,
64 hex, mode 0600). The resource and the salt never leave the machine; only
the commitment does. ``verify --fhir`` recomputes it with the salt file.
``import-consent`` and ``--format fhir`` convert to and from FHIR R4 with
``node.ops.formats`` (docs/formats.md).
"""

from __future__ import annotations

import hashlib
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from node.cli import options
from node.cli.clients import common, documents
from node.cli.clients.common import echo as _echo
from node.cli.clients.common import fail as _fail
from node.cli.clients.common import get as _get
from node.core.codec import CodecError, canonical_json, parse_json
from node.core.keys import KeyFileError, generate_key, load_key, public_key_hex, save_key
from node.core.secretfile import SecretFileError, write_secret
from node.ledger.domains.ehr import (
    EMERGENCY_REASONS,
    ERASE_REASONS,
    PURPOSES,
    REVIEW_FINDINGS,
)
from node.ops.formats import FormatError, fhir_audit, fhir_consent, fhir_documents
from node.ops.formats.fhir_common import bundle

MAX_DOCUMENT_BYTES = 64 << 20
SALT_BYTES = 32


def _pubkey(hex_: str | None, key_file: Path | None, what: str) -> str:
    """A patient's public key from ``--patient HEX`` or ``--patient-key FILE``."""
    if (hex_ is None) == (key_file is None):
        _fail(f"give exactly one of --{what} HEX or --{what}-key FILE")
    if key_file is not None:
        try:
            return public_key_hex(load_key(key_file))
        except KeyFileError as exc:
            _fail(str(exc))
    assert hex_ is not None
    hex_ = hex_.lower()
    if len(hex_) != 64 or any(c not in "0123456789abcdef" for c in hex_):
        _fail(f"--{what} must be 64 hex characters")
    return hex_


def _fhir(convert: Callable[..., Any], *args: Any) -> Any:
    """``convert(*args)``; an answer it cannot convert ends the command with the reason."""
    try:
        return convert(*args)
    except FormatError as exc:
        _fail(f"cannot convert to FHIR R4: {exc}")


def salt_path(document: Path) -> Path:
    return document.with_name(document.name + ".salt")


def fhir_bytes(resource_file: Path) -> tuple[bytes, dict[str, Any]]:
    """The canonical JSON bytes of a FHIR resource file, and the parsed resource."""
    raw = resource_file.read_bytes()
    try:
        resource = parse_json(raw, max_bytes=MAX_DOCUMENT_BYTES)
        data = canonical_json(resource)
    except CodecError as exc:
        where = f" at {exc.path}" if exc.path else ""
        _fail(
            f"{resource_file}: no canonical JSON ({exc.reason}{where}); a resource with "
            "decimal numbers can be anchored as raw bytes with --file"
        )
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        _fail(f"{resource_file}: not a FHIR resource (no resourceType)")
    return data, resource


def commitment_of(salt: bytes, data: bytes) -> str:
    return hashlib.sha256(salt + data).hexdigest()


def read_salt(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
        salt = bytes.fromhex(text)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _fail(f"cannot read the salt file {path}: {exc}")
    if len(salt) != SALT_BYTES:
        _fail(f"salt file {path} must hold {SALT_BYTES} bytes as hex")
    return salt


def _document(fhir: Path | None, file_: Path | None) -> tuple[Path, bytes, str | None]:
    """(path, bytes to commit to, FHIR resourceType or None) of --fhir or --file."""
    if fhir is not None:
        data, resource = fhir_bytes(fhir)
        return fhir, data, str(resource["resourceType"])
    assert file_ is not None
    if file_.stat().st_size > MAX_DOCUMENT_BYTES:
        _fail(f"{file_} is larger than {MAX_DOCUMENT_BYTES} bytes")
    return file_, file_.read_bytes(), None


# the options of this group's commands, declared once each
api_option = options.api(options.API_URL_HELP)
wait_options = options.compose(options.no_wait(), options.commit_timeout())
_patient = click.option("--patient", help="The patient's public key (64 hex).")
_patient_key = click.option(
    "--patient-key", type=options.EXISTING_FILE, help="Or the patient's key file."
)
_patient_key_enrol = click.option(
    "--patient-key",
    type=options.EXISTING_FILE,
    help="Or the patient's key file (public part used).",
)
_from_height = click.option("--from-height", type=int, default=0, show_default=True)
# a read of a patient's data is signed (docs/privacy.md): by --key, else by --patient-key
_reader_key = click.option(
    "--key",
    "key_file",
    type=options.EXISTING_FILE,
    help="Sign the request with this key file (an entitled member's; default: --patient-key).",
)
_format = click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "fhir"]),
    default="json",
    show_default=True,
    help="The node's JSON, or a FHIR R4 Bundle (docs/formats.md).",
)


@click.group(name="ehr")
def group() -> None:
    """Health records: patients, record anchors, consent, audited access."""


# ----------------------------------------------------------------- transactions
@group.command(name="patient-key")
@click.option(
    "--out", type=options.FILE, required=True, help="Where to write the new key (mode 0600)."
)
def patient_key(out: Path) -> None:
    """Make a new pseudonymous patient key (held by the patient) and print its public key."""
    key = generate_key()
    try:
        save_key(out, key)
    except KeyFileError as exc:
        _fail(str(exc))
    _echo({"patient": public_key_hex(key), "key_file": str(out)})


@group.command(name="enroll")
@api_option
@options.key("The hospital's or clinic's member key file.")
@_patient
@_patient_key_enrol
@wait_options
def enroll(
    api: str,
    key_file: Path,
    patient: str | None,
    patient_key: Path | None,
    no_wait: bool,
    timeout: float,
) -> None:
    """Enrol a patient's pseudonymous key (patient.enroll)."""
    body = {"patient": _pubkey(patient, patient_key, "patient")}
    common.submit(api, key_file, "patient.enroll", body, 0 if no_wait else timeout)


@group.command(name="record-anchor")
@api_option
@options.key("The custodian's member key file.")
@click.option("--record-id", required=True, help="The record's id (no personal data).")
@_patient
@_patient_key_enrol
@click.option("--type", "type_", help="FHIR resource type or LOINC code (default: resourceType).")
@click.option(
    "--fhir",
    type=options.EXISTING_FILE,
    help="A FHIR resource (JSON): committed in canonical JSON.",
)
@click.option(
    "--file", "file_", type=options.EXISTING_FILE, help="Or any document, committed as raw bytes."
)
@click.option("--commitment", help="Or a commitment computed elsewhere (64 hex).")
@click.option("--version", type=int, help="Version number (default: the next one).")
@click.option("--replaces", help="The previous version's id (default: the latest version's).")
@click.option("--force-salt", is_flag=True, help="Overwrite an existing salt file.")
@wait_options
def record_anchor(
    api: str,
    key_file: Path,
    record_id: str,
    patient: str | None,
    patient_key: Path | None,
    type_: str | None,
    fhir: Path | None,
    file_: Path | None,
    commitment: str | None,
    version: int | None,
    replaces: str | None,
    force_salt: bool,
    no_wait: bool,
    timeout: float,
) -> None:
    """Anchor a salted commitment of one version of a record (record.anchor).

    With --fhir or --file a fresh salt is written beside the document
    (DOCUMENT.salt, mode 0600); only the commitment leaves this machine.
    """
    if sum(x is not None for x in (fhir, file_, commitment)) != 1:
        _fail("give exactly one of --fhir FILE, --file FILE or --commitment HEX")
    pubkey = _pubkey(patient, patient_key, "patient")
    salt_file: Path | None = None
    if commitment is None:
        doc, data, resource_type = _document(fhir, file_)
        type_ = type_ or resource_type
        salt = secrets.token_bytes(SALT_BYTES)
        commitment = commitment_of(salt, data)
        salt_file = salt_path(doc)
        try:
            write_secret(salt_file, salt.hex().encode() + b"\n", force=force_salt, what="salt")
        except SecretFileError as exc:
            _fail(str(exc))
    if not type_:
        _fail("give --type (a FHIR resource type or a LOINC code)")
    if version is None:
        latest = common.find(api, f"/ehr/records/{_rid(record_id)}")
        version = 1 if latest is None else int(latest["version"]) + 1
        if replaces is None and latest is not None:
            replaces = str(latest["version_id"])
    body: dict[str, Any] = {
        "record_id": record_id,
        "patient": pubkey,
        "type": type_,
        "commitment": commitment,
        "version": version,
    }
    if replaces is not None:
        body["replaces"] = replaces
    if salt_file is not None:
        click.echo(f"salt written to {salt_file} (keep it with the document)", err=True)
    common.submit(api, key_file, "record.anchor", body, 0 if no_wait else timeout)


@group.command(name="consent-grant")
@api_option
@options.key("The patient's key file.")
@click.option("--grantee", required=True, help="The member id granted access.")
@click.option(
    "--scope", type=click.Choice(["all", "records", "types"]), default="all", show_default=True
)
@click.option("--record", "records", multiple=True, help="A record id (scope records).")
@click.option("--type", "types", multiple=True, help="A record type (scope types).")
@click.option("--purpose", "purposes", multiple=True, required=True, type=click.Choice(PURPOSES))
@click.option("--start", type=int, default=0, show_default=True, help="Block time (ms) from.")
@click.option("--end", type=int, help="Block time (ms) until (exclusive).")
@click.option("--valid-for", type=int, help="Or seconds from now (this machine's clock).")
@wait_options
def consent_grant(
    api: str,
    key_file: Path,
    grantee: str,
    scope: str,
    records: tuple[str, ...],
    types: tuple[str, ...],
    purposes: tuple[str, ...],
    start: int,
    end: int | None,
    valid_for: int | None,
    no_wait: bool,
    timeout: float,
) -> None:
    """Grant a member access to records for purposes within a period (consent.grant)."""
    if (end is None) == (valid_for is None):
        _fail("give exactly one of --end MS or --valid-for SECONDS")
    if end is None:
        assert valid_for is not None
        end = max(start, time.time_ns() // 1_000_000) + valid_for * 1000
    body: dict[str, Any] = {
        "grantee": grantee,
        "scope": scope,
        "purpose": sorted(set(purposes)),
        "period": {"start": start, "end": end},
    }
    if records:
        body["data"] = list(records)
    if types:
        body["class"] = list(types)
    common.submit(api, key_file, "consent.grant", body, 0 if no_wait else timeout)


@group.command(name="import-consent")
@api_option
@options.key("The patient's key file (its public key is the pseudonym; no name is sent).")
@click.option(
    "--fhir-consent",
    "consent_file",
    type=options.EXISTING_FILE,
    required=True,
    help="A FHIR R4 Consent (JSON) to grant.",
)
@click.option("--dry-run", is_flag=True, help="Print the consent.grant body; submit nothing.")
@wait_options
def import_consent(
    api: str, key_file: Path, consent_file: Path, dry_run: bool, no_wait: bool, timeout: float
) -> None:
    """Grant what a FHIR R4 Consent permits (consent.grant); refuses what cannot be mapped."""
    try:
        resource = parse_json(consent_file.read_bytes(), max_bytes=MAX_DOCUMENT_BYTES)
        patient_pub = public_key_hex(load_key(key_file))
        body = fhir_consent.consent_to_grant(resource, patient_pub)
    except (CodecError, KeyFileError, FormatError) as exc:
        _fail(f"{consent_file}: cannot import: {exc}")
    if dry_run:
        _echo(body)
        return
    common.submit(api, key_file, "consent.grant", body, 0 if no_wait else timeout)


@group.command(name="consent-revoke")
@api_option
@options.key("The patient's key file.")
@click.option("--consent", "consent_id", required=True, help="The consent id (64 hex).")
@wait_options
def consent_revoke(
    api: str, key_file: Path, consent_id: str, no_wait: bool, timeout: float
) -> None:
    """End a consent; it stays on record, marked revoked (consent.revoke)."""
    body = {"consent_id": consent_id}
    common.submit(api, key_file, "consent.revoke", body, 0 if no_wait else timeout)


@group.command(name="access")
@api_option
@options.key("The grantee's member key file.")
@click.option("--record", "record_id", required=True, help="The record id.")
@click.option("--purpose", required=True, type=click.Choice(PURPOSES))
@click.option("--consent", "consent_id", required=True, help="The consent id (64 hex).")
@wait_options
def access(
    api: str,
    key_file: Path,
    record_id: str,
    purpose: str,
    consent_id: str,
    no_wait: bool,
    timeout: float,
) -> None:
    """Log an access under a consent; rejected with the reason if not covered (access.log)."""
    body = {"record_id": record_id, "purpose": purpose, "consent_id": consent_id}
    common.submit(api, key_file, "access.log", body, 0 if no_wait else timeout)


@group.command(name="emergency")
@api_option
@options.key("The hospital's or clinic's member key file.")
@click.option("--record", "record_id", required=True, help="The record id.")
@click.option("--reason", required=True, type=click.Choice(EMERGENCY_REASONS))
@click.option("--minutes", type=int, default=60, show_default=True, help="Break-glass window.")
@wait_options
def emergency(
    api: str,
    key_file: Path,
    record_id: str,
    reason: str,
    minutes: int,
    no_wait: bool,
    timeout: float,
) -> None:
    """Break-glass access without consent: flagged, seen by the patient (access.emergency)."""
    body = {"record_id": record_id, "reason": reason, "duration_ms": minutes * 60_000}
    common.submit(api, key_file, "access.emergency", body, 0 if no_wait else timeout)


@group.command(name="erase")
@api_option
@options.key("The custodian's member key file.")
@click.option("--record-id", required=True, help="The record's id.")
@click.option("--reason", required=True, type=click.Choice(ERASE_REASONS))
@wait_options
def erase(
    api: str, key_file: Path, record_id: str, reason: str, no_wait: bool, timeout: float
) -> None:
    """Erase every version of a record: the chain records the fact (record.erase).

    Afterwards the chain refuses any anchor, consent or access naming the record.
    The documents and their salts are erased off chain, by the custodian; the
    commitments stay on chain, unlinkable to any content once those are gone.
    """
    body = {"record_id": record_id, "reason": reason}
    common.submit(api, key_file, "record.erase", body, 0 if no_wait else timeout)


@group.command(name="review")
@api_option
@options.key("The auditor's or regulator's member key file.")
@click.option(
    "--emergency", "emergency", required=True, help="The break-glass access's tx hash (64 hex)."
)
@click.option("--finding", required=True, type=click.Choice(REVIEW_FINDINGS))
@wait_options
def review(
    api: str, key_file: Path, emergency: str, finding: str, no_wait: bool, timeout: float
) -> None:
    """Close the review of a break-glass access with a finding (access.review)."""
    body = {"emergency": emergency, "finding": finding}
    common.submit(api, key_file, "access.review", body, 0 if no_wait else timeout)


# ----------------------------------------------------------------- queries
def _rid(record_id: str) -> str:
    return quote(record_id, safe="")


@group.command(name="record")
@api_option
@click.argument("record_id")
def record(api: str, record_id: str) -> None:
    """The latest version of a record."""
    _echo(_get(api, f"/ehr/records/{_rid(record_id)}"))


@group.command(name="history")
@api_option
@click.argument("record_id")
@options.limit()
@_format
def history(api: str, record_id: str, limit: int, format_: str) -> None:
    """A record's version history (--format fhir: DocumentReferences)."""
    answer = _get(api, f"/ehr/records/{_rid(record_id)}/history", {"limit": str(limit)})
    if format_ == "fhir":
        latest = common.find(api, f"/ehr/records/{_rid(record_id)}")
        top = None if latest is None else int(latest["version"])
        answer = _fhir(fhir_documents.history_to_bundle, answer, top)
    _echo(answer)


@group.command(name="verify")
@api_option
@click.option("--commitment", help="A commitment (64 hex).")
@click.option(
    "--fhir",
    type=options.EXISTING_FILE,
    help="Or a FHIR resource (with RESOURCE.json.salt beside it).",
)
@click.option(
    "--file", "file_", type=options.EXISTING_FILE, help="Or a raw document (with DOCUMENT.salt)."
)
@click.option(
    "--salt", "salt_file", type=options.EXISTING_FILE, help="The salt file (default: beside it)."
)
def verify(
    api: str,
    commitment: str | None,
    fhir: Path | None,
    file_: Path | None,
    salt_file: Path | None,
) -> None:
    """Which record and version a document (or commitment) is, anchored when and by whom.

    Exits 1 when nothing anchors it.
    """
    if sum(x is not None for x in (fhir, file_, commitment)) != 1:
        _fail("give exactly one of --fhir FILE, --file FILE or --commitment HEX")
    if commitment is None:
        doc, data, _ = _document(fhir, file_)
        commitment = commitment_of(read_salt(salt_file or salt_path(doc)), data)
    found = common.find(api, f"/ehr/commitments/{quote(commitment, safe='')}")
    if found is None:
        _echo({"commitment": commitment, "anchored": False})
        sys.exit(1)
    _echo({"commitment": commitment, "anchored": True, **found})


@group.command(name="may-access")
@api_option
@click.argument("record_id")
@click.option("--member", required=True, help="The member id.")
@click.option("--purpose", required=True, type=click.Choice(PURPOSES))
@click.option("--consent", "consent_id", help="Check this consent only.")
def may_access(api: str, record_id: str, member: str, purpose: str, consent_id: str | None) -> None:
    """May MEMBER access RECORD_ID for PURPOSE at the latest block time? Exits 1 if not."""
    params = {"member": member, "purpose": purpose}
    if consent_id:
        params["consent_id"] = consent_id
    answer = _get(api, f"/ehr/records/{_rid(record_id)}/may-access", params)
    _echo(answer)
    if not answer.get("allowed"):
        sys.exit(1)


@group.command(name="patient")
@api_option
@_patient
@_patient_key
@_reader_key
def patient(api: str, patient: str | None, patient_key: Path | None, key_file: Path | None) -> None:
    """An enrolled patient: who enrolled the key, when."""
    key = _pubkey(patient, patient_key, "patient")
    _echo(_get(api, f"/ehr/patients/{key}", key_file=key_file or patient_key))


@group.command(name="consents")
@api_option
@_patient
@_patient_key
@_reader_key
@options.limit()
@_format
def consents(
    api: str,
    patient: str | None,
    patient_key: Path | None,
    key_file: Path | None,
    limit: int,
    format_: str,
) -> None:
    """A patient's consents, with their status at the latest block time."""
    key = _pubkey(patient, patient_key, "patient")
    params = {"limit": str(limit)}
    answer = _get(api, f"/ehr/patients/{key}/consents", params, key_file=key_file or patient_key)
    if format_ == "fhir":
        answer = _fhir(lambda cs: bundle(map(fhir_consent.consent_to_fhir, cs)), answer["consents"])
    _echo(answer)


@group.command(name="disclosures")
@api_option
@_patient
@_patient_key
@_reader_key
@options.limit()
@_from_height
@_format
def disclosures(
    api: str,
    patient: str | None,
    patient_key: Path | None,
    key_file: Path | None,
    limit: int,
    from_height: int,
    format_: str,
) -> None:
    """A patient's accounting of disclosures: every access and emergency access
    (--format fhir: AuditEvents)."""
    key = _pubkey(patient, patient_key, "patient")
    params = {"limit": str(limit), "from_height": str(from_height)}
    answer = _get(api, f"/ehr/patients/{key}/disclosures", params, key_file=key_file or patient_key)
    if format_ == "fhir":
        chain_id = str(_get(api, "/info")["chain_id"])
        answer = _fhir(fhir_audit.disclosures_to_bundle, answer, chain_id)
    _echo(answer)


@group.command(name="emergencies")
@api_option
@options.limit()
@_from_height
def emergencies(api: str, limit: int, from_height: int) -> None:
    """Break-glass accesses, for auditors."""
    params = {"limit": str(limit), "from_height": str(from_height)}
    _echo(_get(api, "/ehr/emergency-accesses", params))


# ----------------------------------------------------------------- documents (documents.py)
group.add_command(documents.publish)
group.add_command(documents.fetch)
