"""A trial's registration (``GET /v1/trials/{id}``) in the ClinicalTrials.gov API v2
study layout (``protocolSection`` / ``documentSection`` modules, enum values as the
API spells them); the mapping is docs/clinical-trials.md's and docs/formats.md's.

* ``identificationModule``: an NCT number is ``nctId``; an EU CT, EudraCT or ISRCTN
  number is ``orgStudyIdInfo.id`` and a ``secondaryIdInfos`` entry (``CTIS``,
  ``EUDRACT_NUMBER``, ``REGISTRY``); ``briefTitle``.
* ``statusModule``: ``overallStatus`` from the ledger status; ``startDateStruct``
  (first enrolment) and ``primaryCompletionDateStruct`` (database lock), both
  ``ACTUAL``; ``studyFirstSubmitDate`` (registration); ``lastUpdateSubmitDate`` and
  ``statusVerifiedDate`` (the latest event). Dates are UTC block times.
* ``sponsorCollaboratorsModule.leadSponsor``: the sponsor member id, class ``UNKNOWN``
  (the ledger does not know it).
* ``designModule``: ``studyType`` ``INTERVENTIONAL``; ``enrollmentInfo`` (``ACTUAL``)
  once the database is locked.
* ``outcomesModule``: the registered outcomes. The ledger holds only their
  commitments; ``outcome_texts`` (the sponsor's ``{id: {measure, description,
  timeFrame, salt}}``) fills in the texts, each checked against its commitment
  ``SHA-256(salt || canonical_json({measure, description, timeFrame}))``. Without
  a text, ``measure`` is the outcome id and ``description`` names the commitment.
* ``contactsLocationsModule.locations``: the sites (member ids as ``facility``).
* ``documentSection.largeDocumentModule.largeDocs``: the protocol (``Prot``) and
  statistical analysis plan (``SAP``), their SHA-256 commitments in the ``label``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from node.core.codec import CodecError, canonical_json
from node.core.hexstr import HEX64
from node.ledger.domains.trials import (
    STUDY_ACTIVE,
    STUDY_APPROVED,
    STUDY_COMPLETED,
    STUDY_LOCKED,
)
from node.ops.formats import FormatError
from node.ops.formats.fhir_common import date

OVERALL_STATUS = {
    STUDY_APPROVED: "NOT_YET_RECRUITING",
    STUDY_ACTIVE: "RECRUITING",
    STUDY_LOCKED: "ACTIVE_NOT_RECRUITING",
    STUDY_COMPLETED: "COMPLETED",
}


def secondary_id_type(trial_id: str) -> tuple[str, str]:
    """(``secondaryIdInfos`` type, domain) of a trial id that is no NCT number."""
    if trial_id.startswith("ISRCTN"):
        return "REGISTRY", "ISRCTN"
    if len(trial_id) == 17:  # YYYY-5NNNNN-NN-NN
        return "CTIS", "EU CT number (CTIS)"
    return "EUDRACT_NUMBER", "EudraCT"  # YYYY-NNNNNN-NN


TEXT_FIELDS = ("measure", "description", "timeFrame")


def outcome_commitment(text: Mapping[str, Any]) -> str:
    """The recommended commitment of an outcome's text (docs/clinical-trials.md)."""
    salt = text.get("salt")
    if not isinstance(salt, str) or len(salt) % 2 or not salt:
        raise FormatError("salt", "must be hex")
    try:
        salt_bytes = bytes.fromhex(salt)
        fields = {k: text[k] for k in TEXT_FIELDS if k in text}
        return hashlib.sha256(salt_bytes + canonical_json(fields)).hexdigest()
    except (ValueError, CodecError) as exc:
        raise FormatError("", f"cannot compute the commitment: {exc}") from exc


def _outcomes(
    registered: list[Mapping[str, Any]], texts: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, str]]:
    out = []
    for o in registered:
        text = texts.get(o["id"])
        if text is None:
            out.append(
                {
                    "measure": o["id"],
                    "description": f"Registered as the SHA-256 commitment {o['commitment']}; "
                    "the text is held by the sponsor",
                }
            )
            continue
        if not isinstance(text, Mapping):
            raise FormatError(f"outcome_texts.{o['id']}", "must be a JSON object")
        if outcome_commitment(text) != o["commitment"]:
            raise FormatError(
                f"outcome_texts.{o['id']}",
                "the text and salt do not match the registered commitment",
            )
        if not isinstance(text.get("measure"), str) or not text["measure"]:
            raise FormatError(f"outcome_texts.{o['id']}.measure", "is required")
        out.append({k: str(text[k]) for k in TEXT_FIELDS if k in text})
    return out


def _identification(trial: Mapping[str, Any]) -> dict[str, Any]:
    trial_id = trial["trial_id"]
    out: dict[str, Any] = {}
    if trial_id.startswith("NCT"):
        out["nctId"] = trial_id
    else:
        kind, domain = secondary_id_type(trial_id)
        out["orgStudyIdInfo"] = {"id": trial_id}
        out["secondaryIdInfos"] = [{"id": trial_id, "type": kind, "domain": domain}]
    out["briefTitle"] = trial["brief_title"]
    return out


def _events(trial: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    timeline = trial.get("timeline") or {}
    return [e for e in timeline.values() if isinstance(e, Mapping)]


def _status(trial: Mapping[str, Any]) -> dict[str, Any]:
    status = trial["status"]
    if status not in OVERALL_STATUS:
        raise FormatError("status", f"unknown trial status {status!r}")
    timeline = trial.get("timeline") or {}
    latest = max((int(e["time"]) for e in _events(trial)), default=None)
    out: dict[str, Any] = {}
    if latest is not None:
        out["statusVerifiedDate"] = date(latest)[:7]
    out["overallStatus"] = OVERALL_STATUS[status]
    if timeline.get("first_enrolment"):
        out["startDateStruct"] = {
            "date": date(timeline["first_enrolment"]["time"]),
            "type": "ACTUAL",
        }
    if timeline.get("locked"):
        out["primaryCompletionDateStruct"] = {
            "date": date(timeline["locked"]["time"]),
            "type": "ACTUAL",
        }
    if timeline.get("registered"):
        out["studyFirstSubmitDate"] = date(timeline["registered"]["time"])
    if latest is not None:
        out["lastUpdateSubmitDate"] = date(latest)
    return out


def _documents(trial: Mapping[str, Any]) -> dict[str, Any]:
    timeline = trial.get("timeline") or {}
    last = timeline.get("last_amendment") or timeline.get("registered")
    version = trial["protocol_version"]
    docs = []
    for abbrev, field, what in (
        ("Prot", "protocol_commitment", f"Study Protocol, version {version}"),
        ("SAP", "sap_commitment", "Statistical Analysis Plan"),
    ):
        doc: dict[str, Any] = {
            "typeAbbrev": abbrev,
            "hasProtocol": abbrev == "Prot",
            "hasSap": abbrev == "SAP",
            "hasIcf": False,
            "label": f"{what} (SHA-256 {trial[field]})",
        }
        if last:
            doc["date"] = date(last["time"])
        docs.append(doc)
    return {"largeDocumentModule": {"largeDocs": docs}}


def trial_to_ctgov(
    trial: Mapping[str, Any], outcome_texts: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The ClinicalTrials.gov API v2 study record of a trial's state; ``FormatError``
    when an outcome text does not match its commitment (or names no outcome)."""
    texts = outcome_texts or {}
    known = {o["id"] for o in trial["primary_outcomes"]} | {
        o["id"] for o in trial["secondary_outcomes"]
    }
    unknown = sorted(set(texts) - known)
    if unknown:
        raise FormatError("outcome_texts", f"no registered outcome {', '.join(unknown)}")
    for field in ("protocol_commitment", "sap_commitment"):
        if not HEX64.fullmatch(str(trial.get(field))):
            raise FormatError(field, "must be 64 lowercase hex")
    design: dict[str, Any] = {"studyType": "INTERVENTIONAL"}
    if trial["status"] in (STUDY_LOCKED, STUDY_COMPLETED):
        design["enrollmentInfo"] = {"count": int(trial["counts"]["enrolments"]), "type": "ACTUAL"}
    outcomes: dict[str, Any] = {"primaryOutcomes": _outcomes(trial["primary_outcomes"], texts)}
    if trial["secondary_outcomes"]:
        outcomes["secondaryOutcomes"] = _outcomes(trial["secondary_outcomes"], texts)
    protocol: dict[str, Any] = {
        "identificationModule": _identification(trial),
        "statusModule": _status(trial),
        "sponsorCollaboratorsModule": {
            "leadSponsor": {"name": trial["sponsor"], "class": "UNKNOWN"}
        },
        "designModule": design,
        "outcomesModule": outcomes,
    }
    if trial.get("sites"):
        protocol["contactsLocationsModule"] = {
            "locations": [{"facility": site} for site in trial["sites"]]
        }
    return {"protocolSection": protocol, "documentSection": _documents(trial)}
