"""A patient's accounting of disclosures as a FHIR R4 ``Bundle`` of ``AuditEvent``.

One ``AuditEvent`` per event of ``GET /v1/ehr/patients/{key}/disclosures``
(``access``, ``custodian`` and ``emergency`` kinds), in the answer's order:

* ``id`` = the event's transaction hash (``hygeia client proof <id>`` proves it);
* ``type`` = audit-event-type ``rest``, ``subtype`` = ``read``, ``action`` = ``R``,
  ``outcome`` = ``0`` (success: the ledger only records accesses it accepted);
* ``recorded`` = block time (ISO 8601 instant, UTC);
* ``purposeOfEvent`` = the purpose (v3 ActReason); a break-glass access also
  carries ``BTG`` and its ``period`` (the window, end inclusive), and its review
  finding, once closed, in the ``urn:hygeia:extension:breakglass-review`` extension;
* ``agent`` = the member (``urn:hygeia:member``), the requestor;
* ``source.observer`` = the chain (``urn:hygeia:chain``);
* ``entity`` = the record (``urn:hygeia:record``, version in ``detail``), the
  patient's pseudonymous key, and the consent it was made under, if any.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ops.formats.fhir_common import (
    EXT_REVIEW,
    RESOURCE_TYPES,
    SYSTEM_CHAIN,
    SYSTEM_CONSENT,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    V3_ACT_REASON,
    bundle,
    coding,
    concept,
    instant,
    ref,
)

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
AUDIT_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
BREAK_GLASS = "BTG"
OUTCOME_SUCCESS = "0"


def _purposes(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    codes = [event["purpose"]]
    if event.get("emergency") and BREAK_GLASS not in codes:
        codes.append(BREAK_GLASS)  # every break-glass access is flagged as such
    return [concept(V3_ACT_REASON, c) for c in codes]


def _entities(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    record: dict[str, Any] = {
        "what": ref(SYSTEM_RECORD, event["record_id"]),
        "type": coding(AUDIT_ENTITY_TYPE, "2"),  # system object
        "role": coding(OBJECT_ROLE, "4"),  # domain resource
    }
    if event.get("version") is not None:
        record["detail"] = [{"type": "version", "valueString": str(event["version"])}]
    out = [
        record,
        {
            "what": ref(SYSTEM_PATIENT_KEY, event["patient"]),
            "type": coding(AUDIT_ENTITY_TYPE, "1"),  # person
            "role": coding(OBJECT_ROLE, "1"),  # patient
        },
    ]
    if event.get("consent_id"):
        out.append(
            {
                "what": ref(SYSTEM_CONSENT, event["consent_id"]),
                "type": coding(RESOURCE_TYPES, "Consent"),
            }
        )
    return out


def audit_event(event: Mapping[str, Any], chain_id: str) -> dict[str, Any]:
    """The ``AuditEvent`` of one disclosure (an item of the disclosures answer)."""
    purposes = _purposes(event)
    out: dict[str, Any] = {"resourceType": "AuditEvent", "id": event["tx"]}
    review = event.get("review")
    if event.get("emergency") and isinstance(review, Mapping):
        out["extension"] = [{"url": EXT_REVIEW, "valueCode": review["finding"]}]
    out |= {
        "type": coding(AUDIT_EVENT_TYPE, "rest"),
        "subtype": [coding(RESTFUL_INTERACTION, "read")],
        "action": "R",
    }
    period = event.get("period")
    if isinstance(period, Mapping):
        out["period"] = {"start": instant(period["start"]), "end": instant(period["end"] - 1)}
    out |= {
        "recorded": instant(event["time"]),
        "outcome": OUTCOME_SUCCESS,
        "purposeOfEvent": purposes,
        "agent": [
            {"who": ref(SYSTEM_MEMBER, event["agent"]), "requestor": True, "purposeOfUse": purposes}
        ],
        "source": {
            "observer": ref(SYSTEM_CHAIN, chain_id),
            "type": [coding(SECURITY_SOURCE_TYPE, "4")],  # application server
        },
        "entity": _entities(event),
    }
    return out


def disclosures_to_bundle(
    answer: Mapping[str, Any], chain_id: str, type_: str = "collection"
) -> dict[str, Any]:
    """A ``Bundle`` (``collection`` or ``searchset``) of the disclosures answer's events."""
    return bundle((audit_event(e, chain_id) for e in answer["disclosures"]), type_)
