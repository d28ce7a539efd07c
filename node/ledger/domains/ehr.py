"""Health records: patients, record anchors, consent, audited access (``docs/health-records.md``).

Transaction types (FHIR R4 names where one exists; the mapping is in the docs):

* ``patient.enroll`` (hospital or clinic): registers a patient's pseudonymous
  Ed25519 public key. From then on the patient signs their own consents.
* ``record.anchor`` (custodian: hospital, clinic or pharmacy): a salted
  SHA-256 commitment of one version of a record; versions form a chain
  (``version`` n+1 ``replaces`` the version id of n, the id being the hash of
  the anchoring transaction).
* ``consent.grant`` / ``consent.revoke`` (the patient): a grantee member may
  access records in a scope, for purposes, within a period of block time.
* ``access.log`` (the grantee): an access under a consent, accepted only when
  the consent covers the record, the purpose and the block time. The record's
  own custodian needs no consent: if the named consent does not cover its
  access, the access is recorded as kind ``custodian`` (in the patient's
  disclosures, but no ticket for the document exchange).
* ``access.emergency`` (hospital or clinic): break-glass access without
  consent, time-boxed, flagged, listed to the patient and to auditors.
* ``access.review`` (auditor or regulator): closes the review of one
  break-glass access with a finding (``justified``, ``unjustified``,
  ``inconclusive``), shown with it to auditors and to the patient.
* ``record.erase`` (the record's custodian): every version of a record is
  erased off chain (GDPR Art. 17); the chain records the fact on the record and
  refuses any later anchor of it, consent naming it (``data``), access or
  emergency access to it. Commitments stay, unlinkable once the documents and
  their salts are gone.

Nothing here holds personal data: keys are pseudonyms, documents are salted
commitments, everything else is a code, an id or an integer. There is no
free-text field.

State (all values canonical JSON)::

    ehr/patient/<pubhex>                         patient_info
    ehr/record/<record_id>                       the latest version (record_info)
    ehr/version/<record_id>/<version:010>        every version
    ehr/versionid/<version_id>                   {record_id, version} (version_id: anchor tx)
    ehr/commitment/<commitment>                  {record_id, version}
    ehr/erased/<record_id>                       {height} of its record.erase (erased_records)
    ehr/consent/<consent_id>                     a consent (never erased)
    ehr/pconsent/<pubhex>/<height:012>/<index:06>   consent_id (per patient, in order)
    ehr/disclosure/<pubhex>/<height:012>/<index:06> an access or emergency event
    ehr/access/<tx hash>                         the key of that event (access tx -> event)
    ehr/emergency/<height:012>/<index:06>           an emergency event (for auditors)
    ehr/review/<emergency tx hash>               the review of a break-glass access
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.ledger.context import ExecContext
from node.ledger.domain import (
    Domain,
    PatientScope,
    Query,
    hex64_param,
    int_param,
    pattern_param,
)
from node.ledger.members import is_active, member_key, member_of, require_member
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Hex64, Int, List, Obj, Str
from node.ledger.state import BlockState, block_time

# ----------------------------------------------------------------- vocabulary
ENROLLER_ROLES = ("hospital", "clinic")
CUSTODIAN_ROLES = ("hospital", "clinic", "pharmacy")
EMERGENCY_ROLES = ("hospital", "clinic")
AUDITOR_ROLES = ("auditor", "regulator")
# the finding that closes the review of a break-glass access (access.review)
REVIEW_FINDINGS = ("justified", "unjustified", "inconclusive")

# HL7 v3 PurposeOfUse (FHIR Consent.provision.purpose, AuditEvent.purposeOfEvent)
PURPOSES = (
    "TREAT",  # treatment
    "ETREAT",  # emergency treatment
    "COC",  # coordination of care
    "HPAYMT",  # healthcare payment
    "CLMATTCH",  # claim attachment
    "COVAUTH",  # coverage authorization
    "HOPERAT",  # healthcare operations
    "HRESCH",  # healthcare research
    "CLINTRCH",  # clinical trial research
    "PUBHLTH",  # public health
    "PATRQT",  # patient requested
)
# break-glass reasons, also HL7 v3 PurposeOfUse codes
EMERGENCY_REASONS = ("ETREAT", "ERTREAT", "BTG", "THREAT", "DISASTER", "PUBHLTH")
SCOPES = ("records", "types", "all")
# why a custodian erases a record (record.erase)
ERASE_REASONS = ("patient-request", "legal-order", "retention-expired", "entered-in-error")

MAX_EMERGENCY_MS = 72 * 3600 * 1000  # a break-glass window is at most 72 hours
MAX_VERSION = 1_000_000
MAX_QUERY_LIMIT = 1000
DEFAULT_QUERY_LIMIT = 100

RECORD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
# a FHIR R4 resource type (DocumentReference, Observation, ...) or a LOINC code (11506-3)
RECORD_TYPE = re.compile(r"^(?:[A-Z][A-Za-z]{1,63}|[0-9]{1,7}-[0-9])$")

_RECORD_ID = Str(max_len=64, pattern=RECORD_ID)
_RECORD_TYPE = Str(max_len=64, pattern=RECORD_TYPE)


# ----------------------------------------------------------------- keys
def patient_key(pubhex: str) -> bytes:
    return b"ehr/patient/" + pubhex.encode()


def record_key(record_id: str) -> bytes:
    return b"ehr/record/" + record_id.encode()


def version_prefix(record_id: str) -> bytes:
    return b"ehr/version/" + record_id.encode() + b"/"


def version_key(record_id: str, version: int) -> bytes:
    return version_prefix(record_id) + f"{version:010d}".encode()


def version_id_key(version_id: str) -> bytes:
    """The index of a version by its id (the hash of the anchoring transaction)."""
    return b"ehr/versionid/" + version_id.encode()


def access_key(tx_hash: str) -> bytes:
    """The index of an access or emergency event by its transaction's hash; the value
    is the event's key (text) in the patient's accounting of disclosures."""
    return b"ehr/access/" + tx_hash.encode()


def commitment_key(commitment: str) -> bytes:
    return b"ehr/commitment/" + commitment.encode()


ERASED_PREFIX = b"ehr/erased/"


def erased_records(state: BlockState) -> Iterator[str]:
    """The ids of every erased record, in id order (a node finishes their erasure in
    its document store when it starts: node/daemon.py)."""
    for key, _ in state.iter_prefix(ERASED_PREFIX):
        yield key[len(ERASED_PREFIX) :].decode()


def consent_key(consent_id: str) -> bytes:
    return b"ehr/consent/" + consent_id.encode()


def _pos(ctx: ExecContext) -> bytes:
    return f"{ctx.block.height:012d}/{ctx.index:06d}".encode()


def patient_consents_prefix(pubhex: str) -> bytes:
    return b"ehr/pconsent/" + pubhex.encode() + b"/"


def disclosures_prefix(pubhex: str) -> bytes:
    return b"ehr/disclosure/" + pubhex.encode() + b"/"


EMERGENCY_PREFIX = b"ehr/emergency/"


def review_key(emergency_tx: str) -> bytes:
    """The review of the break-glass access made by transaction ``emergency_tx``."""
    return b"ehr/review/" + emergency_tx.encode()


# ----------------------------------------------------------------- exports
def record_info(state: BlockState, record_id: str) -> dict[str, Any] | None:
    """The latest version of a record: record_id, patient, custodian, type, version,
    commitment, version_id, replaces, height, time, tx, and erased (None, or
    {height, time, reason, tx} of its ``record.erase``); None if unknown."""
    if not RECORD_ID.fullmatch(record_id):
        return None
    found: dict[str, Any] | None = state.get(record_key(record_id))
    if found is None:
        return None
    return {**found, "erased": found.get("erased")}


def version_of(state: BlockState, version_id: str) -> dict[str, Any] | None:
    """The version a ``version_id`` (the hash of its ``record.anchor``) names: the
    version's entry (record_id, patient, custodian, type, version, commitment,
    version_id, replaces, height, time, tx) with the record's ``latest`` version
    number and ``erased`` (None, or the erasure's {height, time, reason, tx}, which
    covers every version); None if no anchor committed with that hash."""
    if not HEX64.fullmatch(version_id):
        return None
    where = state.get(version_id_key(version_id))
    if where is None:
        return None
    entry: dict[str, Any] = state.get(version_key(where["record_id"], where["version"]))
    record = state.get(record_key(where["record_id"]))
    return {**entry, "latest": record["version"], "erased": record.get("erased")}


def access_event(state: BlockState, tx_hash: str) -> dict[str, Any] | None:
    """The access or emergency event a committed ``access.log`` / ``access.emergency``
    wrote (kind, emergency, record_id, version, agent, purpose, consent_id, reason,
    period, patient, height, time, tx; an emergency's ``review``); None for any other
    hash, and for a custodian's access without consent (no ticket)."""
    if not HEX64.fullmatch(tx_hash):
        return None
    where = state.get(access_key(tx_hash))
    if where is None:
        return None
    event: dict[str, Any] | None = _with_review(state, state.get(str(where).encode()))
    return event


def patient_info(state: BlockState, pubkey_hex: str) -> dict[str, Any] | None:
    """An enrolled patient: key, enrolled_by (member id), height, time, tx; None if not."""
    if not HEX64.fullmatch(pubkey_hex):
        return None
    found: dict[str, Any] | None = state.get(patient_key(pubkey_hex))
    return found


# ----------------------------------------------------------------- helpers
def _with_review(state: BlockState, event: Any) -> Any:
    """A break-glass event with its ``review`` (None until an auditor closes it)."""
    if isinstance(event, dict) and event.get("emergency"):
        return {**event, "review": state.get(review_key(event["tx"]))}
    return event


def _signer_member_id(ctx: ExecContext) -> str:
    member = member_of(ctx.state, ctx.tx.signer)
    assert member is not None  # authorize ran first
    return str(member["id"])


def _require_patient(ctx: ExecContext) -> None:
    if ctx.state.get(patient_key(ctx.tx.signer)) is None:
        raise Rejection("unauthorized", "signer is not an enrolled patient key")


def _event(
    ctx: ExecContext, patient: str, fields: dict[str, Any], ticket: bool = True
) -> dict[str, Any]:
    """Store an access event (FHIR AuditEvent) in the patient's accounting of
    disclosures, and (``ticket``) its key under the transaction's hash (``access_event``)."""
    event = {
        **fields,
        "patient": patient,
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
    }
    key = disclosures_prefix(patient) + _pos(ctx)
    ctx.state.put(key, event)
    if ticket:
        ctx.state.put(access_key(ctx.tx.hash), key.decode())
    return event


def _erased_rejection(record: dict[str, Any]) -> Rejection:
    erased = record["erased"]
    return Rejection(
        "erased", f"record {record['record_id']} was erased at height {erased['height']}"
    )


def consent_decision(
    consent: dict[str, Any] | None,
    record: dict[str, Any] | None,
    member_id: str,
    purpose: str,
    now_ms: int,
) -> tuple[str, str]:
    """("ok", "") or (reason code, message): does this consent let the member access
    this record for this purpose at block time ``now_ms``?"""
    if record is None:
        return "unknown-record", "no such record"
    if record.get("erased") is not None:
        return "erased", f"record {record['record_id']} was erased"
    if consent is None:
        return "unknown-consent", "no such consent"
    if consent["grantee"] != member_id:
        return "consent-grantee", f"consent is granted to {consent['grantee']}, not {member_id}"
    if consent["patient"] != record["patient"]:
        return "consent-scope", "consent was given by another patient than the record's"
    if consent.get("revoked") is not None:
        return "consent-revoked", f"consent revoked at height {consent['revoked']['height']}"
    period = consent["period"]
    if now_ms < period["start"]:
        return "consent-not-yet-valid", f"consent period starts at {period['start']}"
    if now_ms >= period["end"]:
        return "consent-expired", f"consent period ended at {period['end']}"
    scope = consent["scope"]
    if scope == "records" and record["record_id"] not in consent["data"]:
        return "consent-scope", f"record {record['record_id']} is not in the consent's records"
    if scope == "types" and record["type"] not in consent["class"]:
        return "consent-scope", f"record type {record['type']} is not in the consent's types"
    if purpose not in consent["purpose"]:
        return "consent-purpose", f"purpose {purpose} is not among {', '.join(consent['purpose'])}"
    return "ok", ""


# ----------------------------------------------------------------- patient.enroll
def _auth_enroller(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *ENROLLER_ROLES)


def _apply_enroll(ctx: ExecContext) -> dict[str, Any]:
    key = ctx.tx.body["patient"]
    if ctx.state.get(patient_key(key)) is not None:
        raise Rejection("already-enrolled", "this patient key is already enrolled")
    if member_of(ctx.state, key) is not None:
        raise Rejection("key-is-member", "a member's signing key cannot be a patient key")
    info = {
        "key": key,
        "enrolled_by": _signer_member_id(ctx),
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
    }
    ctx.state.put(patient_key(key), info)
    return {"patient": key}


# ----------------------------------------------------------------- record.anchor
def _auth_custodian(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *CUSTODIAN_ROLES)


def _apply_anchor(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    record_id, version = body["record_id"], body["version"]
    custodian = _signer_member_id(ctx)
    latest = ctx.state.get(record_key(record_id))
    if latest is not None and latest.get("erased") is not None:
        raise _erased_rejection(latest)
    if ctx.state.get(patient_key(body["patient"])) is None:
        raise Rejection("unknown-patient", "the patient key is not enrolled")
    if ctx.state.get(commitment_key(body["commitment"])) is not None:
        raise Rejection("commitment-exists", "this commitment is already anchored")
    replaces = body.get("replaces")
    if latest is None:
        if version != 1 or replaces is not None:
            raise Rejection("bad-version", "a new record starts at version 1 and replaces nothing")
    else:
        if latest["custodian"] != custodian:
            raise Rejection("not-custodian", f"record {record_id} is held by {latest['custodian']}")
        if latest["patient"] != body["patient"]:
            raise Rejection("patient-mismatch", "a new version must keep the record's patient")
        if version != latest["version"] + 1:
            raise Rejection(
                "bad-version", f"next version of {record_id} is {latest['version'] + 1}"
            )
        if replaces != latest["version_id"]:
            raise Rejection(
                "bad-replaces", f"version {version} must replace {latest['version_id']}"
            )
    entry = {
        "record_id": record_id,
        "patient": body["patient"],
        "custodian": custodian,
        "type": body["type"],
        "version": version,
        "version_id": ctx.tx.hash,
        "replaces": replaces,
        "commitment": body["commitment"],
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
    }
    ctx.state.put(record_key(record_id), entry)
    ctx.state.put(version_key(record_id, version), entry)
    ctx.state.put(commitment_key(body["commitment"]), {"record_id": record_id, "version": version})
    ctx.state.put(version_id_key(ctx.tx.hash), {"record_id": record_id, "version": version})
    return {"record_id": record_id, "version": version, "version_id": ctx.tx.hash}


# ----------------------------------------------------------------- record.erase
def _apply_erase(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    record_id = body["record_id"]
    record = ctx.state.get(record_key(record_id))
    if record is None:
        raise Rejection("unknown-record", "no such record")
    custodian = _signer_member_id(ctx)
    if record["custodian"] != custodian:
        raise Rejection("not-custodian", f"record {record_id} is held by {record['custodian']}")
    if record.get("erased") is not None:
        height = record["erased"]["height"]
        raise Rejection("already-erased", f"record {record_id} was erased at height {height}")
    erased = {
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "reason": body["reason"],
        "tx": ctx.tx.hash,
    }
    # one write whatever the number of versions: every reader of a version joins the
    # record's entry (version_of, history, commitments)
    ctx.state.put(record_key(record_id), {**record, "erased": erased})
    ctx.state.put(ERASED_PREFIX + record_id.encode(), {"height": ctx.block.height})
    return {"record_id": record_id, "versions": record["version"], "erased": erased}


# ----------------------------------------------------------------- consent.grant
def _apply_grant(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    patient = ctx.tx.signer
    grantee = ctx.state.get(member_key(body["grantee"]))
    if not is_active(grantee):
        raise Rejection("unknown-grantee", f"no active member {body['grantee']}")
    scope = body["scope"]
    data, klass = body.get("data"), body.get("class")
    if scope == "records":
        if not data or klass is not None:
            raise Rejection("malformed", "scope records needs data (record ids) and no class")
        for rid in data:
            rec = ctx.state.get(record_key(rid))
            if rec is None:
                raise Rejection("unknown-record", f"no record {rid}")
            if rec.get("erased") is not None:
                raise _erased_rejection(rec)
            if rec["patient"] != patient:
                raise Rejection("not-patients-record", f"record {rid} is not the signer's")
    elif scope == "types":
        if not klass or data is not None:
            raise Rejection("malformed", "scope types needs class (record types) and no data")
    elif data is not None or klass is not None:
        raise Rejection("malformed", "scope all takes neither data nor class")
    period = body["period"]
    if period["end"] <= period["start"]:
        raise Rejection("bad-period", "period.end must be after period.start")
    consent = {
        "consent_id": ctx.tx.hash,
        "patient": patient,
        "grantee": body["grantee"],
        "scope": scope,
        "data": sorted(data) if data else [],
        "class": sorted(klass) if klass else [],
        "purpose": sorted(body["purpose"]),
        "period": {"start": period["start"], "end": period["end"]},
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "revoked": None,
    }
    ctx.state.put(consent_key(ctx.tx.hash), consent)
    ctx.state.put(patient_consents_prefix(patient) + _pos(ctx), ctx.tx.hash)
    return {"consent_id": ctx.tx.hash}


# ----------------------------------------------------------------- consent.revoke
def _apply_revoke(ctx: ExecContext) -> dict[str, Any]:
    consent_id = ctx.tx.body["consent_id"]
    consent = ctx.state.get(consent_key(consent_id))
    if consent is None:
        raise Rejection("unknown-consent", "no such consent")
    if consent["patient"] != ctx.tx.signer:
        raise Rejection("unauthorized", "only the patient who granted a consent may revoke it")
    if consent["revoked"] is not None:
        raise Rejection("already-revoked", f"revoked at height {consent['revoked']['height']}")
    consent["revoked"] = {"height": ctx.block.height, "time": ctx.block.time_ms, "tx": ctx.tx.hash}
    ctx.state.put(consent_key(consent_id), consent)
    return {"consent_id": consent_id}


# ----------------------------------------------------------------- access.log
def _auth_member(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def _custodian_access(ctx: ExecContext, record: dict[str, Any], member_id: str) -> dict[str, Any]:
    """The record's own custodian's access without a covering consent (kind ``custodian``,
    the named consent ignored): in the patient's disclosures, but no ticket
    (``access_event`` does not find it), the documents being the custodian's own."""
    fields = {
        "kind": "custodian",
        "emergency": False,
        "record_id": record["record_id"],
        "version": record["version"],
        "agent": member_id,
        "purpose": ctx.tx.body["purpose"],
        "consent_id": None,
        "reason": None,
        "period": None,
    }
    event = _event(ctx, record["patient"], fields, ticket=False)
    return {"record_id": record["record_id"], "version": record["version"], "time": event["time"]}


def _apply_access(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    member_id = _signer_member_id(ctx)
    record = ctx.state.get(record_key(body["record_id"]))
    consent = ctx.state.get(consent_key(body["consent_id"]))
    code, message = consent_decision(consent, record, member_id, body["purpose"], ctx.block.time_ms)
    if code not in ("ok", "unknown-record", "erased"):
        assert record is not None
        if record["custodian"] == member_id:
            return _custodian_access(ctx, record, member_id)
    if code != "ok":
        raise Rejection(code, message)
    assert record is not None
    event = _event(
        ctx,
        record["patient"],
        {
            "kind": "access",
            "emergency": False,
            "record_id": record["record_id"],
            "version": record["version"],
            "agent": member_id,
            "purpose": body["purpose"],
            "consent_id": body["consent_id"],
            "reason": None,
            "period": None,
        },
    )
    return {"record_id": record["record_id"], "version": record["version"], "time": event["time"]}


# ----------------------------------------------------------------- access.emergency
def _auth_emergency(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *EMERGENCY_ROLES)


def _apply_emergency(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    member_id = _signer_member_id(ctx)
    record = ctx.state.get(record_key(body["record_id"]))
    if record is None:
        raise Rejection("unknown-record", "no such record")
    if record.get("erased") is not None:
        raise _erased_rejection(record)
    start = ctx.block.time_ms
    event = _event(
        ctx,
        record["patient"],
        {
            "kind": "emergency",
            "emergency": True,
            "record_id": record["record_id"],
            "version": record["version"],
            "agent": member_id,
            "purpose": body["reason"],
            "consent_id": None,
            "reason": body["reason"],
            "period": {"start": start, "end": start + body["duration_ms"]},
        },
    )
    ctx.state.put(EMERGENCY_PREFIX + _pos(ctx), event)
    return {
        "record_id": record["record_id"],
        "emergency": True,
        "period": event["period"],
    }


# ----------------------------------------------------------------- access.review
def _auth_auditor(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *AUDITOR_ROLES)


def _apply_review(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    target = body["emergency"]
    event = access_event(ctx.state, target)
    if event is None or not event["emergency"]:
        raise Rejection("unknown-emergency", "no break-glass access was made by this transaction")
    found = ctx.state.get(review_key(target))
    if found is not None:
        raise Rejection(
            "already-reviewed", f"reviewed at height {found['height']}: {found['finding']}"
        )
    reviewer = _signer_member_id(ctx)
    if reviewer == event["agent"]:
        raise Rejection("own-emergency", "a member cannot review its own break-glass access")
    review = {
        "emergency": target,
        "finding": body["finding"],
        "reviewer": reviewer,
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
    }
    ctx.state.put(review_key(target), review)
    return {"emergency": target, "finding": body["finding"], "reviewer": reviewer}


# ----------------------------------------------------------------- queries
def _limit(query: Mapping[str, str]) -> int:
    return int_param(query, "limit", DEFAULT_QUERY_LIMIT, 1, MAX_QUERY_LIMIT)


def _from_height(query: Mapping[str, str]) -> int:
    raw = query.get("from_height", "0")
    height = parse_uint(raw, 12)
    if height is None:
        raise Rejection("malformed", "from_height must be a non-negative integer")
    return height


def _record_param(value: str) -> str:
    return pattern_param(value, "record_id", RECORD_ID)


def _page(items: Iterator[tuple[bytes, Any]], query: Mapping[str, str]) -> list[Any]:
    limit, from_height = _limit(query), _from_height(query)
    out: list[Any] = []
    for _, value in items:
        if isinstance(value, dict) and value.get("height", 0) < from_height:
            continue
        out.append(value)
        if len(out) >= limit:
            break
    return out


def _q_record(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    return record_info(state, _record_param(path["record_id"]))


def _q_history(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    record_id = _record_param(path["record_id"])
    record = state.get(record_key(record_id))
    if record is None:
        return None
    versions = _page(state.iter_prefix(version_prefix(record_id)), query)
    return {"record_id": record_id, "erased": record.get("erased"), "versions": versions}


def _q_version(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    return version_of(state, hex64_param(path["version_id"], "version_id"))


def _q_verify(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    commitment = hex64_param(path["commitment"], "commitment")
    where = state.get(commitment_key(commitment))
    if where is None:
        return None
    entry = state.get(version_key(where["record_id"], where["version"]))
    latest = state.get(record_key(where["record_id"]))
    return {
        **entry,
        "latest": latest["version"] == where["version"],
        "erased": latest.get("erased"),
    }


def _q_may_access(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    record_id = _record_param(path["record_id"])
    member_id = query.get("member", "")
    purpose = query.get("purpose", "")
    if not MEMBER_ID.fullmatch(member_id):
        raise Rejection("malformed", "member (a member id) is required")
    if purpose not in PURPOSES:
        raise Rejection("malformed", f"purpose must be one of {', '.join(PURPOSES)}")
    now = block_time(state)
    record = state.get(record_key(record_id))
    answer: dict[str, Any] = {
        "record_id": record_id,
        "member": member_id,
        "purpose": purpose,
        "time": now,
        "allowed": False,
        "consent_id": None,
        "reason": "unknown-record",
        "emergency": None,
    }
    if record is None:
        return answer
    if record.get("erased") is not None:
        return {**answer, "reason": "erased"}
    if record["custodian"] == member_id:
        return {**answer, "allowed": True, "reason": "custodian"}
    wanted = query.get("consent_id")
    candidates: list[str] = []
    if wanted is not None:
        candidates = [hex64_param(wanted, "consent_id")]
    else:
        for _, cid in state.iter_prefix(patient_consents_prefix(record["patient"])):
            candidates.append(cid)
    reason = "no-consent"
    for cid in candidates:
        code, _ = consent_decision(state.get(consent_key(cid)), record, member_id, purpose, now)
        if code == "ok":
            return {**answer, "allowed": True, "consent_id": cid, "reason": "ok"}
        if code != "consent-grantee" or wanted is not None:
            reason = code  # the last relevant reason among the member's consents
    window = _open_emergency(state, record, member_id, now)
    if window is not None:
        return {**answer, "allowed": True, "reason": "emergency", "emergency": window}
    return {**answer, "reason": reason}


def _open_emergency(
    state: BlockState, record: Mapping[str, Any], member_id: str, now: int
) -> dict[str, Any] | None:
    """The member's latest break-glass access to the record whose window holds ``now``
    (``tx``, ``reason``, ``period``), or None."""
    found: dict[str, Any] | None = None
    for _, event in state.iter_prefix(disclosures_prefix(record["patient"])):
        if (
            event["emergency"]
            and event["record_id"] == record["record_id"]
            and event["agent"] == member_id
            and event["period"]["start"] <= now < event["period"]["end"]
        ):
            found = {k: event[k] for k in ("tx", "reason", "period")}
    return found


def _q_patient(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    return patient_info(state, hex64_param(path["key"], "key"))


def _consent_status(consent: dict[str, Any], now: int) -> str:
    """FHIR Consent.status at block time ``now``: active, proposed (not yet valid) or
    inactive (expired or revoked)."""
    if consent["revoked"] is not None or now >= consent["period"]["end"]:
        return "inactive"
    if now < consent["period"]["start"]:
        return "proposed"
    return "active"


def _q_consents(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    key = hex64_param(path["key"], "key")
    if state.get(patient_key(key)) is None:
        return None
    now = block_time(state)
    index = state.iter_prefix(patient_consents_prefix(key))
    page = _page(((k, state.get(consent_key(cid))) for k, cid in index), query)
    consents = [{**c, "status": _consent_status(c, now)} for c in page]
    return {"patient": key, "time": now, "consents": consents}


def _q_disclosures(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    key = hex64_param(path["key"], "key")
    if state.get(patient_key(key)) is None:
        return None
    found = _page(state.iter_prefix(disclosures_prefix(key)), query)
    return {"patient": key, "disclosures": [_with_review(state, e) for e in found]}


def _q_emergency(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
    found = _page(state.iter_prefix(EMERGENCY_PREFIX), query)
    return {"emergency_accesses": [_with_review(state, e) for e in found]}


# ----------------------------------------------------------------- registration
PATIENT_ENROLL = TxType(
    name="patient.enroll",
    schema=Obj({"patient": Hex64()}),
    authorize=_auth_enroller,
    apply=_apply_enroll,
    summary="a hospital or clinic enrols a patient's pseudonymous Ed25519 public key",
)

RECORD_ANCHOR = TxType(
    name="record.anchor",
    schema=Obj(
        {
            "record_id": _RECORD_ID,
            "patient": Hex64(),
            "type": _RECORD_TYPE,
            "commitment": Hex64(),
            "version": Int(min=1, max=MAX_VERSION),
            "replaces": Hex64(optional=True),
        }
    ),
    authorize=_auth_custodian,
    apply=_apply_anchor,
    summary="a custodian anchors a salted commitment of one version of a patient's record",
)

CONSENT_GRANT = TxType(
    name="consent.grant",
    schema=Obj(
        {
            "grantee": Str(max_len=64, pattern=MEMBER_ID),
            "scope": Str(choices=SCOPES),
            "data": List(_RECORD_ID, max_items=64, min_items=1, unique=True, optional=True),
            "class": List(_RECORD_TYPE, max_items=32, min_items=1, unique=True, optional=True),
            "purpose": List(
                Str(choices=PURPOSES), max_items=len(PURPOSES), min_items=1, unique=True
            ),
            "period": Obj({"start": Int(), "end": Int()}),
        }
    ),
    authorize=_require_patient,
    apply=_apply_grant,
    summary="a patient grants a member access to records for purposes within a period",
)

CONSENT_REVOKE = TxType(
    name="consent.revoke",
    schema=Obj({"consent_id": Hex64()}),
    authorize=_require_patient,
    apply=_apply_revoke,
    summary="a patient ends a consent (it stays on record, marked revoked)",
)

ACCESS_LOG = TxType(
    name="access.log",
    schema=Obj({"record_id": _RECORD_ID, "purpose": Str(choices=PURPOSES), "consent_id": Hex64()}),
    authorize=_auth_member,
    apply=_apply_access,
    summary="a grantee records an access to a record under a consent (checked at commit); "
    "the record's custodian needs no consent",
)

ACCESS_EMERGENCY = TxType(
    name="access.emergency",
    schema=Obj(
        {
            "record_id": _RECORD_ID,
            "reason": Str(choices=EMERGENCY_REASONS),
            "duration_ms": Int(min=1, max=MAX_EMERGENCY_MS),
        }
    ),
    authorize=_auth_emergency,
    apply=_apply_emergency,
    summary="break-glass access without consent: time-boxed, flagged, seen by patient and auditors",
)

ACCESS_REVIEW = TxType(
    name="access.review",
    schema=Obj({"emergency": Hex64(), "finding": Str(choices=REVIEW_FINDINGS)}),
    authorize=_auth_auditor,
    apply=_apply_review,
    summary="an auditor or regulator closes the review of a break-glass access with a finding",
)

RECORD_ERASE = TxType(
    name="record.erase",
    schema=Obj({"record_id": _RECORD_ID, "reason": Str(choices=ERASE_REASONS)}),
    authorize=_auth_custodian,
    apply=_apply_erase,
    summary="the custodian erases every version of a record off chain; the chain keeps the fact",
)

# who besides the patient reads a patient's consents and disclosures (docs/privacy.md)
_READERS = "the member that enrolled the key (its custodian), an auditor or a regulator"


def _enroller(state: BlockState, path: Mapping[str, str]) -> tuple[str, ...]:
    info = patient_info(state, path["key"])
    return () if info is None else (info["enrolled_by"],)


DOMAIN = Domain(
    name="ehr",
    tx_types=(
        PATIENT_ENROLL,
        RECORD_ANCHOR,
        CONSENT_GRANT,
        CONSENT_REVOKE,
        ACCESS_LOG,
        ACCESS_EMERGENCY,
        RECORD_ERASE,
        ACCESS_REVIEW,
    ),
    queries=(
        Query("/ehr/records/{record_id}", _q_record, "The latest version of a record"),
        Query(
            "/ehr/records/{record_id}/history",
            _q_history,
            "A record's version history, oldest first",
            ("limit", "from_height"),
        ),
        Query(
            "/ehr/records/{record_id}/may-access",
            _q_may_access,
            "May member X access this record for purpose P at the latest block time?",
            ("member", "purpose", "consent_id"),
        ),
        Query(
            "/ehr/versions/{version_id}",
            _q_version,
            "One version by its id (its record.anchor's hash): record, custodian, commitment, "
            "the record's latest version number and its erasure",
        ),
        Query(
            "/ehr/commitments/{commitment}",
            _q_verify,
            "Document verification: which record and version a commitment anchors, when, by whom",
        ),
        Query(
            "/ehr/patients/{key}",
            _q_patient,
            "An enrolled patient (pseudonymous key)",
            scope=PatientScope(
                "key", "a custodian, an auditor or a regulator", CUSTODIAN_ROLES + AUDITOR_ROLES
            ),
        ),
        Query(
            "/ehr/patients/{key}/consents",
            _q_consents,
            "A patient's consents with their status at the latest block time",
            ("limit", "from_height"),
            scope=PatientScope("key", _READERS, AUDITOR_ROLES, _enroller),
        ),
        Query(
            "/ehr/patients/{key}/disclosures",
            _q_disclosures,
            "A patient's accounting of disclosures: every access and emergency access",
            ("limit", "from_height"),
            scope=PatientScope("key", _READERS, AUDITOR_ROLES, _enroller),
        ),
        Query(
            "/ehr/emergency-accesses",
            _q_emergency,
            "Break-glass accesses with their review, for auditors",
            ("limit", "from_height"),
        ),
    ),
)
