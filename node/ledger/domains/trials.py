"""Clinical trials: registration, amendments, consent, enrolment, data, lock, results.

Nine transaction types (``trial.*``) and five queries. Nothing about a
participant's health goes on chain: a participant is a pseudonym commitment
(64 hex, salted by the site), outcomes and documents are commitments, data
batches are Merkle roots with a count. ``brief_title`` and ``reason`` are
short free text that must not hold PHI (docs/clinical-trials.md).

Who does what:

* ``trial.register``, ``trial.amend``, ``trial.lock``, ``trial.results``: a
  member with role ``sponsor``; amend, lock and results only by the sponsor
  member that registered the trial.
* ``trial.consent``, ``trial.enroll``, ``trial.withdraw``, ``trial.data``: a
  member with role ``hospital`` or ``clinic`` that the sponsor listed as a
  site of the trial (``sites`` in register or amend). A participant belongs
  to the site that first recorded their consent.
* ``trial.approve``: the trial's ethics committee (a member with role
  ``regulator`` named at registration) approves or rejects a pending amendment
  (``trials_approval.py``).

Rules enforced at execution (stable rejection codes in brackets): enrolment
needs consent to the *current* protocol version, so after an amendment every
participant not yet enrolled must re-consent [consent-outdated]; a withdrawn
participant cannot consent or be enrolled again [withdrawn]; no consent,
enrolment, data or amendment after the database lock [locked]; results only
after the lock [not-locked] and once [already-reported]. After a safety
amendment, data naming a participant still on an older consent is refused until
they re-consent [reconsent-required] (``trials_reconsent.py``); a trial with an
ethics committee keeps each amendment pending, the old version in force, until
the committee decides [amendment-pending, no-pending-amendment].

Flags (recorded in the trial, listed by the audit report; the transaction is
accepted): ``outcomes-changed-after-enrolment`` when an amendment changes the
outcomes after the first enrolment; at results, against the pre-specified
outcomes (those in force at the first enrolment, i.e. as of the last
amendment before it): ``outcome-missing``, ``outcome-added`` and
``outcome-changed`` (other description commitment, or moved between primary
and secondary).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from node.ledger.context import ExecContext
from node.ledger.domain import Domain, PatientScope, Query, hex64_param, ids_after, int_param
from node.ledger.domains.trials_approval import (
    APPROVED,
    COMMITTEE_ROLES,
    DECISIONS,
    MAX_REJECTED,
    check_committee,
    decision_record,
    rejected_count,
    timeline_events,
)
from node.ledger.domains.trials_reconsent import (
    MAX_DATA_PARTICIPANTS,
    SAFETY_REASON,
    check_data_participants,
    outdated_participants,
    reconsent_from,
)
from node.ledger.members import is_active, member_key, require_member
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Hex64, Int, List, Obj, Str
from node.ledger.state import BlockState

# ------------------------------------------------------------------ limits and patterns
# NCT number (ClinicalTrials.gov), EU CT number (CTIS), EudraCT number, ISRCTN.
TRIAL_ID = re.compile(r"^(NCT\d{8}|\d{4}-5\d{5}-\d{2}-\d{2}|\d{4}-\d{6}-\d{2}|ISRCTN\d{8})$")
OUTCOME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MEMBER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
SHORT_TEXT = re.compile(r"^[^\x00-\x1f\x7f]+$")  # no control characters

MAX_TITLE = 200
MAX_REASON = 140
MAX_PRIMARY = 16
MAX_SECONDARY = 64
MAX_SITES = 64
MAX_VERSIONS = 256
MAX_RECORDS_PER_BATCH = 1_000_000
MAX_LIST = 1000

SITE_ROLES = ("hospital", "clinic")

AMEND_REASONS = (
    "safety",
    "eligibility",
    "outcome-change",
    "sample-size",
    "design",
    "statistical-analysis",
    "sites",
    "regulatory-request",
    "administrative",
    "other",
)
WITHDRAW_REASONS = (
    "participant-request",
    "adverse-event",
    "lost-to-follow-up",
    "investigator-decision",
    "sponsor-decision",
    "other",
)

# FHIR R4 ResearchStudy.status and ResearchSubject.status codes
STUDY_APPROVED = "approved"  # registered, no enrolment yet
STUDY_ACTIVE = "active"  # first enrolment done
STUDY_LOCKED = "closed-to-accrual-and-intervention"  # database locked
STUDY_COMPLETED = "completed"  # results reported
SUBJECT_CONSENTED = "pending-on-study"
SUBJECT_ENROLLED = "on-study"
SUBJECT_WITHDRAWN = "withdrawn"

FLAG_AMEND_AFTER_ENROLMENT = "outcomes-changed-after-enrolment"
FLAG_MISSING = "outcome-missing"
FLAG_ADDED = "outcome-added"
FLAG_CHANGED = "outcome-changed"


# ------------------------------------------------------------------ state keys
def trial_key(trial_id: str) -> bytes:
    return b"trial/" + trial_id.encode()


def version_key(trial_id: str, version: int) -> bytes:
    return b"trialver/" + trial_id.encode() + b"/" + b"%06d" % version


def subject_key(trial_id: str, participant: str) -> bytes:
    return b"trialsubj/" + trial_id.encode() + b"/" + participant.encode()


def data_key(trial_id: str, seq: int) -> bytes:
    return b"trialdata/" + trial_id.encode() + b"/" + b"%010d" % seq


def root_key(trial_id: str, root: str) -> bytes:
    return b"trialroot/" + trial_id.encode() + b"/" + root.encode()


def sponsor_index_key(sponsor: str, trial_id: str) -> bytes:
    return b"trialsponsor/" + sponsor.encode() + b"/" + trial_id.encode()


# ------------------------------------------------------------------ schemas
_TRIAL_ID = Str(max_len=20, pattern=TRIAL_ID)
_PARTICIPANT = Hex64()
_OUTCOME = Obj({"id": Str(max_len=32, pattern=OUTCOME_ID), "commitment": Hex64()})
_PRIMARY = List(_OUTCOME, max_items=MAX_PRIMARY, min_items=1)

REGISTER_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "brief_title": Str(max_len=MAX_TITLE, pattern=SHORT_TEXT),
        "protocol_commitment": Hex64(),
        "sap_commitment": Hex64(),
        "primary_outcomes": _PRIMARY,
        "secondary_outcomes": List(_OUTCOME, max_items=MAX_SECONDARY, optional=True),
        "sites": List(
            Str(max_len=64, pattern=MEMBER_ID), max_items=MAX_SITES, unique=True, optional=True
        ),
        "ethics_committee": Str(max_len=64, pattern=MEMBER_ID, optional=True),
    }
)
AMEND_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "protocol_version": Int(min=2, max=MAX_VERSIONS, optional=True),
        "reason_code": Str(max_len=32, choices=AMEND_REASONS),
        "reason": Str(max_len=MAX_REASON, pattern=SHORT_TEXT),
        "protocol_commitment": Hex64(),
        "sap_commitment": Hex64(optional=True),
        "primary_outcomes": List(_OUTCOME, max_items=MAX_PRIMARY, min_items=1, optional=True),
        "secondary_outcomes": List(_OUTCOME, max_items=MAX_SECONDARY, optional=True),
        "sites": List(
            Str(max_len=64, pattern=MEMBER_ID), max_items=MAX_SITES, unique=True, optional=True
        ),
    }
)
CONSENT_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "participant": _PARTICIPANT,
        "protocol_version": Int(min=1, max=MAX_VERSIONS),
    }
)
WITHDRAW_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "participant": _PARTICIPANT,
        "reason_code": Str(max_len=32, choices=WITHDRAW_REASONS, optional=True),
    }
)
ENROLL_SCHEMA = Obj({"trial_id": _TRIAL_ID, "participant": _PARTICIPANT})
DATA_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "merkle_root": Hex64(),
        "record_count": Int(min=1, max=MAX_RECORDS_PER_BATCH),
        "participants": List(
            _PARTICIPANT, max_items=MAX_DATA_PARTICIPANTS, min_items=1, unique=True, optional=True
        ),
    }
)
LOCK_SCHEMA = Obj({"trial_id": _TRIAL_ID, "lock_commitment": Hex64()})
APPROVE_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "protocol_version": Int(min=2, max=MAX_VERSIONS),
        "decision": Str(max_len=16, choices=DECISIONS),
    }
)
RESULTS_SCHEMA = Obj(
    {
        "trial_id": _TRIAL_ID,
        "primary_outcomes": List(_OUTCOME, max_items=MAX_PRIMARY),
        "secondary_outcomes": List(_OUTCOME, max_items=MAX_SECONDARY),
        "results_commitment": Hex64(),
    }
)


# ------------------------------------------------------------------ helpers
def _event(ctx: ExecContext, **extra: Any) -> dict[str, Any]:
    return {
        "height": ctx.block.height,
        "index": ctx.index,
        "time": ctx.block.time_ms,
        "tx": ctx.tx.hash,
        **extra,
    }


def _signer_member(ctx: ExecContext) -> str:
    member_id: str = ctx.state.get(b"memberkey/" + ctx.tx.signer.encode())
    return member_id


def _load_trial(state: BlockState, trial_id: str) -> dict[str, Any]:
    trial: dict[str, Any] | None = state.get(trial_key(trial_id))
    if trial is None:
        raise Rejection("unknown-trial", f"trial {trial_id} is not registered")
    return trial


def _as_sponsor(ctx: ExecContext) -> dict[str, Any]:
    trial = _load_trial(ctx.state, ctx.tx.body["trial_id"])
    if trial["sponsor"] != _signer_member(ctx):
        raise Rejection("unauthorized", f"only the sponsor {trial['sponsor']} may do this")
    return trial


def _as_site(ctx: ExecContext) -> tuple[dict[str, Any], str]:
    trial = _load_trial(ctx.state, ctx.tx.body["trial_id"])
    site = _signer_member(ctx)
    if site not in trial["sites"]:
        raise Rejection("unauthorized", f"member {site} is not a site of trial {trial['trial_id']}")
    return trial, site


def _check_outcome_ids(primary: list[Any], secondary: list[Any]) -> None:
    seen: dict[str, None] = {}
    for name, items in (("primary_outcomes", primary), ("secondary_outcomes", secondary)):
        for i, item in enumerate(items):
            if item["id"] in seen:
                raise Rejection(
                    "malformed", f"body.{name}[{i}].id: outcome id {item['id']} given twice"
                )
            seen[item["id"]] = None


def _check_sites(state: BlockState, sites: list[str]) -> list[str]:
    for site in sites:
        if not is_active(state.get(member_key(site)), *SITE_ROLES):
            raise Rejection(
                "unknown-site", f"site {site} is not an active member with role hospital or clinic"
            )
    return sorted(sites)


def _outcome_map(trial_like: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """outcome id -> (category, commitment)."""
    out: dict[str, tuple[str, str]] = {}
    for category in ("primary", "secondary"):
        for item in trial_like[f"{category}_outcomes"]:
            out[item["id"]] = (category, item["commitment"])
    return out


def _outcome_diff(
    before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]
) -> dict[str, list[str]]:
    return {
        "added": sorted(k for k in after if k not in before),
        "removed": sorted(k for k in before if k not in after),
        "changed": sorted(k for k in after if k in before and after[k] != before[k]),
    }


def _copy_outcomes(src: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "primary_outcomes": list(src["primary_outcomes"]),
        "secondary_outcomes": list(src["secondary_outcomes"]),
    }


# ------------------------------------------------------------------ authorisation
def _auth_sponsor(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, "sponsor")


def _auth_site(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *SITE_ROLES)


# ------------------------------------------------------------------ apply
def _apply_register(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial_id = body["trial_id"]
    if ctx.state.exists(trial_key(trial_id)):
        raise Rejection("already-registered", f"trial {trial_id} is already registered")
    secondary = body.get("secondary_outcomes", [])
    _check_outcome_ids(body["primary_outcomes"], secondary)
    sites = _check_sites(ctx.state, body.get("sites", []))
    committee = body.get("ethics_committee")
    if committee is not None:
        check_committee(ctx.state.get(member_key(committee)), committee)
    sponsor = _signer_member(ctx)
    ev = _event(ctx)
    trial: dict[str, Any] = {
        "trial_id": trial_id,
        "brief_title": body["brief_title"],
        "sponsor": sponsor,
        "status": STUDY_APPROVED,
        "protocol_version": 1,
        "protocol_commitment": body["protocol_commitment"],
        "sap_commitment": body["sap_commitment"],
        "primary_outcomes": body["primary_outcomes"],
        "secondary_outcomes": secondary,
        "sites": sites,
        "ethics_committee": committee,
        "pending_amendment": None,
        "amendment_decisions": [],
        "reconsent_from": None,
        "prespecified": None,
        "timeline": {
            "registered": ev,
            "last_amendment": None,
            "first_enrolment": None,
            "locked": None,
            "results": None,
        },
        "counts": {
            "consents": 0,
            "participants": 0,
            "enrolments": 0,
            "withdrawals": 0,
            "data_batches": 0,
            "data_records": 0,
        },
        "lock_commitment": None,
        "results": None,
        "flags": [],
    }
    ctx.state.put(trial_key(trial_id), trial)
    ctx.state.put(
        version_key(trial_id, 1),
        {
            "protocol_version": 1,
            "reason_code": "initial",
            "reason": "registration",
            "protocol_commitment": body["protocol_commitment"],
            "sap_commitment": body["sap_commitment"],
            **_copy_outcomes(trial),
            "sites": sites,
            "outcomes_changed": None,
            "after_enrolment": False,
            "submitted": ev,
            "approval": None,
            **ev,
        },
    )
    ctx.state.put(sponsor_index_key(sponsor, trial_id), 1)
    return {"trial_id": trial_id, "protocol_version": 1, "sponsor": sponsor}


def _apply_amend(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial = _as_sponsor(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is not None:
        raise Rejection("locked", f"trial {trial_id} is locked")
    pending = trial.get("pending_amendment")
    if pending is not None:
        raise Rejection(
            "amendment-pending",
            f"the amendment to version {pending['protocol_version']} awaits the ethics "
            "committee's decision",
        )
    version = trial["protocol_version"] + 1
    if "protocol_version" in body and body["protocol_version"] != version:
        raise Rejection(
            "version-conflict",
            f"the next protocol version of {trial_id} is {version}, not {body['protocol_version']}",
        )
    if version > MAX_VERSIONS:
        raise Rejection("too-many-versions", f"at most {MAX_VERSIONS} protocol versions")
    if body["protocol_commitment"] == trial["protocol_commitment"]:
        raise Rejection("protocol-unchanged", "an amendment needs a new protocol commitment")
    primary = body.get("primary_outcomes", trial["primary_outcomes"])
    secondary = body.get("secondary_outcomes", trial["secondary_outcomes"])
    _check_outcome_ids(primary, secondary)
    sites = _check_sites(ctx.state, body["sites"]) if "sites" in body else trial["sites"]
    ev = _event(ctx)
    proposal: dict[str, Any] = {
        "protocol_version": version,
        "reason_code": body["reason_code"],
        "reason": body["reason"],
        "protocol_commitment": body["protocol_commitment"],
        "sap_commitment": body.get("sap_commitment", trial["sap_commitment"]),
        "primary_outcomes": primary,
        "secondary_outcomes": secondary,
        "sites": sites,
        "submitted": ev,
    }
    if trial.get("ethics_committee") is not None:
        if rejected_count(trial) >= MAX_REJECTED:
            raise Rejection(
                "too-many-versions", f"at most {MAX_REJECTED} rejected amendments per trial"
            )
        trial["pending_amendment"] = proposal
        ctx.state.put(trial_key(trial_id), trial)
        return {
            "trial_id": trial_id,
            "protocol_version": version,
            "flagged": False,
            "pending": True,
        }
    flagged = _put_amendment(ctx, trial, proposal, None)
    return {"trial_id": trial_id, "protocol_version": version, "flagged": flagged, "pending": False}


def _put_amendment(
    ctx: ExecContext,
    trial: dict[str, Any],
    proposal: Mapping[str, Any],
    approval: Mapping[str, Any] | None,
) -> bool:
    """Make ``proposal`` the trial's protocol version in force, at this transaction;
    write the trial and the version entry. Whether the outcome-change flag was raised."""
    trial_id = trial["trial_id"]
    version = proposal["protocol_version"]
    before = _outcome_map(trial)
    trial["primary_outcomes"] = proposal["primary_outcomes"]
    trial["secondary_outcomes"] = proposal["secondary_outcomes"]
    trial["sites"] = proposal["sites"]
    diff = _outcome_diff(before, _outcome_map(trial))
    changed = bool(diff["added"] or diff["removed"] or diff["changed"])
    after_enrolment = trial["timeline"]["first_enrolment"] is not None
    ev = _event(ctx)
    flagged = changed and after_enrolment
    if flagged:
        trial["flags"].append(
            {"code": FLAG_AMEND_AFTER_ENROLMENT, "protocol_version": version, **diff, **ev}
        )
    trial["protocol_version"] = version
    trial["protocol_commitment"] = proposal["protocol_commitment"]
    trial["sap_commitment"] = proposal["sap_commitment"]
    if proposal["reason_code"] == SAFETY_REASON:
        trial["reconsent_from"] = version
    trial["timeline"]["last_amendment"] = {"protocol_version": version, **ev}
    ctx.state.put(trial_key(trial_id), trial)
    ctx.state.put(
        version_key(trial_id, version),
        {
            "protocol_version": version,
            "reason_code": proposal["reason_code"],
            "reason": proposal["reason"],
            "protocol_commitment": trial["protocol_commitment"],
            "sap_commitment": trial["sap_commitment"],
            **_copy_outcomes(trial),
            "sites": trial["sites"],
            "outcomes_changed": diff if changed else None,
            "after_enrolment": after_enrolment,
            "submitted": proposal["submitted"],
            "approval": None if approval is None else dict(approval),
            **ev,
        },
    )
    return flagged


def _auth_committee(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer, *COMMITTEE_ROLES)


def _apply_approve(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial = _load_trial(ctx.state, body["trial_id"])
    trial_id = trial["trial_id"]
    committee = _signer_member(ctx)
    if trial.get("ethics_committee") != committee:
        raise Rejection(
            "unauthorized", f"member {committee} is not the ethics committee of trial {trial_id}"
        )
    if trial["lock_commitment"] is not None:
        raise Rejection("locked", f"trial {trial_id} is locked")
    pending = trial.get("pending_amendment")
    if pending is None or pending["protocol_version"] != body["protocol_version"]:
        raise Rejection(
            "no-pending-amendment",
            f"no amendment to version {body['protocol_version']} of {trial_id} is pending",
        )
    decision = body["decision"]
    record = decision_record(pending, decision, committee, _event(ctx))
    trial["pending_amendment"] = None
    trial["amendment_decisions"] = [*trial.get("amendment_decisions", []), record]
    flagged = False
    if decision == APPROVED:
        approval = {"committee": committee, "decision": decision}
        flagged = _put_amendment(ctx, trial, pending, approval)
    else:
        ctx.state.put(trial_key(trial_id), trial)
    return {
        "trial_id": trial_id,
        "protocol_version": pending["protocol_version"],
        "decision": decision,
        "flagged": flagged,
    }


def _apply_consent(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial, site = _as_site(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is not None:
        raise Rejection("locked", f"trial {trial_id} is locked")
    version = body["protocol_version"]
    if version > trial["protocol_version"]:
        raise Rejection(
            "unknown-version",
            f"trial {trial_id} is at protocol version {trial['protocol_version']}",
        )
    key = subject_key(trial_id, body["participant"])
    subject: dict[str, Any] | None = ctx.state.get(key)
    ev = _event(ctx, protocol_version=version)
    if subject is None:
        subject = {
            "participant": body["participant"],
            "site": site,
            "status": SUBJECT_CONSENTED,
            "consented_version": version,
            "consents": [ev],
            "enrolled": None,
            "withdrawn": None,
        }
        trial["counts"]["participants"] += 1
    else:
        if subject["site"] != site:
            raise Rejection("wrong-site", f"the participant belongs to site {subject['site']}")
        if subject["status"] == SUBJECT_WITHDRAWN:
            raise Rejection("withdrawn", "the participant has withdrawn from the trial")
        if version <= subject["consented_version"]:
            raise Rejection(
                "already-consented",
                f"the participant consented to version {subject['consented_version']} already",
            )
        subject["consented_version"] = version
        subject["consents"].append(ev)
    trial["counts"]["consents"] += 1
    ctx.state.put(key, subject)
    ctx.state.put(trial_key(trial_id), trial)
    return {"trial_id": trial_id, "participant": body["participant"], "protocol_version": version}


def _load_subject(ctx: ExecContext, trial_id: str, site: str) -> dict[str, Any]:
    key = subject_key(trial_id, ctx.tx.body["participant"])
    subject: dict[str, Any] | None = ctx.state.get(key)
    if subject is None:
        raise Rejection("no-consent", "no consent is recorded for this participant")
    if subject["site"] != site:
        raise Rejection("wrong-site", f"the participant belongs to site {subject['site']}")
    return subject


def _apply_enroll(ctx: ExecContext) -> dict[str, Any]:
    trial, site = _as_site(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is not None:
        raise Rejection("locked", f"trial {trial_id} is locked")
    subject = _load_subject(ctx, trial_id, site)
    if subject["status"] == SUBJECT_WITHDRAWN:
        raise Rejection("withdrawn", "the participant has withdrawn from the trial")
    if subject["status"] == SUBJECT_ENROLLED:
        raise Rejection("already-enrolled", "the participant is enrolled already")
    if subject["consented_version"] != trial["protocol_version"]:
        raise Rejection(
            "consent-outdated",
            f"consent is to protocol version {subject['consented_version']}; "
            f"version {trial['protocol_version']} needs re-consent",
        )
    ev = _event(ctx, protocol_version=trial["protocol_version"])
    subject["status"] = SUBJECT_ENROLLED
    subject["enrolled"] = ev
    first = trial["timeline"]["first_enrolment"] is None
    if first:
        trial["timeline"]["first_enrolment"] = ev
        trial["status"] = STUDY_ACTIVE
        trial["prespecified"] = {
            "protocol_version": trial["protocol_version"],
            **_copy_outcomes(trial),
        }
    trial["counts"]["enrolments"] += 1
    ctx.state.put(subject_key(trial_id, subject["participant"]), subject)
    ctx.state.put(trial_key(trial_id), trial)
    return {"trial_id": trial_id, "participant": subject["participant"], "first_enrolment": first}


def _apply_withdraw(ctx: ExecContext) -> dict[str, Any]:
    trial, site = _as_site(ctx)
    trial_id = trial["trial_id"]
    subject = _load_subject(ctx, trial_id, site)
    if subject["status"] == SUBJECT_WITHDRAWN:
        raise Rejection("already-withdrawn", "the participant has withdrawn already")
    subject["status"] = SUBJECT_WITHDRAWN
    subject["withdrawn"] = _event(
        ctx, reason_code=ctx.tx.body.get("reason_code", "participant-request")
    )
    trial["counts"]["withdrawals"] += 1
    ctx.state.put(subject_key(trial_id, subject["participant"]), subject)
    ctx.state.put(trial_key(trial_id), trial)
    return {"trial_id": trial_id, "participant": subject["participant"]}


def _apply_data(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial, site = _as_site(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is not None:
        raise Rejection("locked", f"trial {trial_id} is locked: no more data")
    if trial["timeline"]["first_enrolment"] is None:
        raise Rejection("no-enrolment", f"trial {trial_id} has no enrolled participant yet")
    named = check_data_participants(
        trial,
        site,
        body.get("participants"),
        lambda p: ctx.state.get(subject_key(trial_id, p)),
    )
    rkey = root_key(trial_id, body["merkle_root"])
    if ctx.state.exists(rkey):
        raise Rejection("duplicate-batch", "this Merkle root was recorded for the trial already")
    seq = trial["counts"]["data_batches"] + 1
    ctx.state.put(
        data_key(trial_id, seq),
        {
            "seq": seq,
            "merkle_root": body["merkle_root"],
            "record_count": body["record_count"],
            "participant_count": named,
            "site": site,
            **_event(ctx),
        },
    )
    ctx.state.put(rkey, seq)
    trial["counts"]["data_batches"] = seq
    trial["counts"]["data_records"] += body["record_count"]
    ctx.state.put(trial_key(trial_id), trial)
    return {"trial_id": trial_id, "seq": seq}


def _apply_lock(ctx: ExecContext) -> dict[str, Any]:
    trial = _as_sponsor(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is not None:
        raise Rejection("already-locked", f"trial {trial_id} is locked already")
    trial["lock_commitment"] = ctx.tx.body["lock_commitment"]
    trial["status"] = STUDY_LOCKED
    trial["timeline"]["locked"] = _event(ctx)
    ctx.state.put(trial_key(trial_id), trial)
    return {"trial_id": trial_id}


def compare_outcomes(
    registered: Mapping[str, Any], reported: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Outcome-switching flags of reported against registered outcomes, sorted by id."""
    reg = _outcome_map(registered)
    rep = _outcome_map(reported)
    flags: list[dict[str, Any]] = []
    for oid in sorted({**reg, **rep}):
        if oid not in rep:
            flags.append({"code": FLAG_MISSING, "outcome_id": oid, "registered": reg[oid][0]})
        elif oid not in reg:
            flags.append({"code": FLAG_ADDED, "outcome_id": oid, "reported": rep[oid][0]})
        elif reg[oid] != rep[oid]:
            change = []
            if reg[oid][0] != rep[oid][0]:
                change.append("category")
            if reg[oid][1] != rep[oid][1]:
                change.append("commitment")
            flags.append(
                {
                    "code": FLAG_CHANGED,
                    "outcome_id": oid,
                    "registered": reg[oid][0],
                    "reported": rep[oid][0],
                    "change": change,
                }
            )
    return flags


def _apply_results(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    trial = _as_sponsor(ctx)
    trial_id = trial["trial_id"]
    if trial["lock_commitment"] is None:
        raise Rejection("not-locked", f"trial {trial_id}: results only after the database lock")
    if trial["results"] is not None:
        raise Rejection("already-reported", f"trial {trial_id} has results already")
    _check_outcome_ids(body["primary_outcomes"], body["secondary_outcomes"])
    registered = trial["prespecified"] or {
        "protocol_version": trial["protocol_version"],
        **_copy_outcomes(trial),
    }
    ev = _event(ctx)
    new_flags = [{**f, **ev} for f in compare_outcomes(registered, body)]
    trial["flags"].extend(new_flags)
    trial["results"] = {
        "results_commitment": body["results_commitment"],
        "primary_outcomes": body["primary_outcomes"],
        "secondary_outcomes": body["secondary_outcomes"],
        "compared_with_version": registered["protocol_version"],
    }
    trial["status"] = STUDY_COMPLETED
    trial["timeline"]["results"] = ev
    ctx.state.put(trial_key(trial_id), trial)
    return {
        "trial_id": trial_id,
        "outcome_switching": bool(new_flags),
        "flags": [{k: f[k] for k in f if k not in ev} for f in new_flags],
    }


# ------------------------------------------------------------------ queries
def _trial_id_param(path: Mapping[str, str]) -> str:
    trial_id = path["trial_id"]
    if not TRIAL_ID.fullmatch(trial_id):
        raise Rejection("malformed", "trial_id must be an NCT, EU CT, EudraCT or ISRCTN number")
    return trial_id


def _query_trial(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = state.get(trial_key(_trial_id_param(path)))
    return found


def _query_participant(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    trial_id = _trial_id_param(path)
    participant = hex64_param(path["participant"], "participant")
    found: dict[str, Any] | None = state.get(subject_key(trial_id, participant))
    return found


def _subjects(state: BlockState, trial_id: str, after: str = "") -> Iterator[dict[str, Any]]:
    """A trial's participant records in pseudonym order, those after ``after``."""
    for _, subject in ids_after(state, b"trialsubj/" + trial_id.encode() + b"/", after):
        yield subject


def audit_report(
    state: BlockState,
    trial_id: str,
    data_limit: int = 100,
    data_after: int = 0,
    outdated_limit: int = 100,
) -> dict[str, Any] | None:
    """A trial's audit report: timeline, amendments, counts, data commitments, flags,
    approvals and the participants who must re-consent (the first ``outdated_limit``)."""
    trial: dict[str, Any] | None = state.get(trial_key(trial_id))
    if trial is None:
        return None
    versions = [v for _, v in state.iter_prefix(b"trialver/" + trial_id.encode() + b"/")]
    timeline: list[dict[str, Any]] = [{"event": "registered", **trial["timeline"]["registered"]}]
    for v in versions[1:]:
        timeline.append(
            {
                "event": "amended",
                "protocol_version": v["protocol_version"],
                "reason_code": v["reason_code"],
                "approved_by": (v.get("approval") or {}).get("committee"),
                **{k: v[k] for k in ("height", "index", "time", "tx")},
            }
        )
    timeline.extend(timeline_events(trial))
    for name, event in (
        ("first_enrolment", "first-enrolment"),
        ("locked", "locked"),
        ("results", "results"),
    ):
        if trial["timeline"][name] is not None:
            timeline.append({"event": event, **trial["timeline"][name]})
    timeline.sort(key=lambda e: (e["height"], e["index"]))
    batches: list[dict[str, Any]] = []
    start = data_key(trial_id, data_after + 1)
    for key, batch in state.iter_prefix(b"trialdata/" + trial_id.encode() + b"/"):
        if key < start:
            continue
        if len(batches) >= data_limit:
            break
        batches.append(batch)
    flags = trial["flags"]
    required_from = reconsent_from(trial)
    outdated, more = outdated_participants(
        _subjects(state, trial_id), required_from, outdated_limit
    )
    return {
        "trial_id": trial_id,
        "brief_title": trial["brief_title"],
        "sponsor": trial["sponsor"],
        "status": trial["status"],
        "protocol_version": trial["protocol_version"],
        "sites": trial["sites"],
        "timeline": timeline,
        "amendments": versions[1:],
        "counts": trial["counts"],
        "data": {
            "batches": trial["counts"]["data_batches"],
            "records": trial["counts"]["data_records"],
            "commitments": batches,
        },
        "prespecified": trial["prespecified"],
        "lock_commitment": trial["lock_commitment"],
        "results": trial["results"],
        "flags": flags,
        "outcome_switching": any(f["code"] != FLAG_AMEND_AFTER_ENROLMENT for f in flags),
        "outcomes_changed_after_enrolment": any(
            f["code"] == FLAG_AMEND_AFTER_ENROLMENT for f in flags
        ),
        "ethics_committee": trial.get("ethics_committee"),
        "pending_amendment": trial.get("pending_amendment"),
        "amendment_decisions": trial.get("amendment_decisions", []),
        "reconsent": {
            "required_from_version": required_from,
            "outdated": outdated,
            "more": more,
        },
    }


def _query_report(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    trial_id = _trial_id_param(path)
    limit = int_param(query, "data_limit", 100, 0, MAX_LIST)
    after = int_param(query, "data_after", 0, 0, 9_999_999_999)
    return audit_report(state, trial_id, limit, after)


def _query_reconsent(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    trial_id = _trial_id_param(path)
    limit = int_param(query, "limit", 100, 1, MAX_LIST)
    after = query.get("after", "")
    if after:
        hex64_param(after, "after")
    trial: dict[str, Any] | None = state.get(trial_key(trial_id))
    if trial is None:
        return None
    required_from = reconsent_from(trial)
    outdated, more = outdated_participants(_subjects(state, trial_id, after), required_from, limit)
    return {
        "trial_id": trial_id,
        "required_from_version": required_from,
        "participants": outdated,
        "more": more,
    }


def _summary(trial: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "trial_id": trial["trial_id"],
        "brief_title": trial["brief_title"],
        "sponsor": trial["sponsor"],
        "status": trial["status"],
        "protocol_version": trial["protocol_version"],
        "flags": len(trial["flags"]),
    }


def _query_list(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    limit = int_param(query, "limit", 100, 1, MAX_LIST)
    after = query.get("after", "")
    sponsor = query.get("sponsor")
    found: Iterator[dict[str, Any]]
    if sponsor is not None:
        if not MEMBER_ID.fullmatch(sponsor) or len(sponsor) > 64:
            raise Rejection("malformed", "sponsor must be a member id")
        index = ids_after(state, b"trialsponsor/" + sponsor.encode() + b"/", after)
        found = (_load_trial(state, trial_id) for trial_id, _ in index)
    else:
        found = (trial for _, trial in ids_after(state, b"trial/", after))
    return {"trials": [_summary(trial) for trial in itertools.islice(found, limit)]}


# ------------------------------------------------------------------ the domain
TRIAL_REGISTER = TxType(
    "trial.register",
    REGISTER_SCHEMA,
    _auth_sponsor,
    _apply_register,
    "register a clinical trial: protocol and SAP commitments, pre-specified outcomes, sites",
)
TRIAL_AMEND = TxType(
    "trial.amend",
    AMEND_SCHEMA,
    _auth_sponsor,
    _apply_amend,
    "amend a trial's protocol (new version, reason); outcome changes after enrolment are flagged",
)
TRIAL_CONSENT = TxType(
    "trial.consent",
    CONSENT_SCHEMA,
    _auth_site,
    _apply_consent,
    "a site records a participant's consent to a protocol version",
)
TRIAL_WITHDRAW = TxType(
    "trial.withdraw",
    WITHDRAW_SCHEMA,
    _auth_site,
    _apply_withdraw,
    "a site records a participant's withdrawal",
)
TRIAL_ENROLL = TxType(
    "trial.enroll",
    ENROLL_SCHEMA,
    _auth_site,
    _apply_enroll,
    "a site enrols a participant who consented to the current protocol version",
)
TRIAL_DATA = TxType(
    "trial.data",
    DATA_SCHEMA,
    _auth_site,
    _apply_data,
    "a site commits a batch of case-report-form records (Merkle root and count)",
)
TRIAL_LOCK = TxType(
    "trial.lock",
    LOCK_SCHEMA,
    _auth_sponsor,
    _apply_lock,
    "the sponsor locks the trial database (no more data)",
)
TRIAL_APPROVE = TxType(
    "trial.approve",
    APPROVE_SCHEMA,
    _auth_committee,
    _apply_approve,
    "the trial's ethics committee approves or rejects its pending amendment",
)
TRIAL_RESULTS = TxType(
    "trial.results",
    RESULTS_SCHEMA,
    _auth_sponsor,
    _apply_results,
    "the sponsor reports results; outcomes are checked against the pre-specified ones",
)


def _participant_readers(state: BlockState, path: Mapping[str, str]) -> list[str]:
    """The members who read a participant's record besides the participant (when the
    pseudonym is their key): the sponsor, the ethics committee, the participant's site."""
    trial = state.get(trial_key(_trial_id_param(path)))
    if trial is None:
        return []
    subject = state.get(
        subject_key(trial["trial_id"], hex64_param(path["participant"], "participant"))
    )
    readers = [trial["sponsor"], trial.get("ethics_committee")]
    if subject is not None:
        readers.append(subject["site"])
    return [r for r in readers if r is not None]


DOMAIN = Domain(
    name="trials",
    tx_types=(
        TRIAL_REGISTER,
        TRIAL_AMEND,
        TRIAL_CONSENT,
        TRIAL_WITHDRAW,
        TRIAL_ENROLL,
        TRIAL_DATA,
        TRIAL_LOCK,
        TRIAL_RESULTS,
        TRIAL_APPROVE,
    ),
    queries=(
        Query(
            "/trials",
            _query_list,
            "Registered trials, all or by sponsor member id (paged by trial id)",
            ("sponsor", "after", "limit"),
        ),
        Query("/trials/{trial_id}", _query_trial, "A clinical trial's registration and state"),
        Query(
            "/trials/{trial_id}/report",
            _query_report,
            "A trial's audit report: timeline, amendments, counts, data commitments, flags",
            ("data_after", "data_limit"),
        ),
        Query(
            "/trials/{trial_id}/participants/{participant}",
            _query_participant,
            "A participant's consent, enrolment and withdrawal in a trial (by pseudonym)",
            scope=PatientScope(
                "participant",
                "the trial's sponsor, its ethics committee, the participant's site",
                named=_participant_readers,
            ),
        ),
        Query(
            "/trials/{trial_id}/reconsent",
            _query_reconsent,
            "Participants who must re-consent after a safety amendment (paged by pseudonym)",
            ("after", "limit"),
        ),
    ),
)
