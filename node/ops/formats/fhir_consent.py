"""FHIR R4 ``Consent`` to a ``consent.grant`` body, and a consent back to a ``Consent``.

Import (``consent_to_grant``) maps a privacy consent's single permit provision:

* ``provision.actor`` (one, role ``IRCP``/``PRCP``, ``reference.identifier`` in
  ``urn:hygeia:member``) -> ``grantee``;
* ``provision.purpose`` (v3 ActReason codings) -> ``purpose`` (``PURPOSES``);
* ``provision.period`` -> ``period`` {``start``, ``end``} in integer ms, the end
  made exclusive at the precision given;
* ``provision.data`` (``meaning = instance``, identifiers in ``urn:hygeia:record``)
  -> scope ``records``; ``provision.class`` (FHIR resource types, LOINC) -> scope
  ``types``; neither -> scope ``all``.

Whatever would narrow the consent in a way the ledger cannot enforce
(``securityLabel``, ``code``, ``dataPeriod``, nested provisions, a ``deny``,
modifier extensions) is refused with a ``FormatError`` naming the element: an
import never grants more than the document says. ``Consent.patient`` is never
copied: the body names no patient (the patient signs with their pseudonymous
key, given on the command line), and nothing but codes, ids and integers goes
into the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.core.hexstr import HEX64
from node.ledger.domains.ehr import MEMBER_ID, PURPOSES, RECORD_ID, RECORD_TYPE
from node.ops.formats import FormatError, json_list, json_object
from node.ops.formats.fhir_common import (
    CONSENT_ACTION,
    CONSENT_SCOPE,
    LOINC,
    RESOURCE_TYPES,
    SYSTEM_CONSENT,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    V3_ACT_CODE,
    V3_ACT_REASON,
    V3_PARTICIPATION_TYPE,
    coding,
    concept,
    end_ms,
    ident,
    instant,
    record_type_coding,
    ref,
    start_ms,
)

# the consent.grant schema's bounds (node/ledger/domains/ehr.py)
MAX_DATA = 64
MAX_CLASS = 32
GRANTABLE_STATUSES = ("active",)  # proposed: "not yet agreed to" in R4
RECIPIENT_ROLES = ("IRCP", "PRCP")  # information recipient, primary information recipient
PATIENT_CONSENT = "59284-0"  # LOINC: Patient Consent (Consent.category)
# provision elements the ledger's consent cannot express: refused, never dropped
UNMAPPABLE = {
    "securityLabel": "the ledger's records carry no security labels",
    "code": "the ledger's consent cannot restrict by content code",
    "dataPeriod": "the ledger's consent cannot restrict by the data's own period",
    "provision": "nested provisions (exceptions) cannot be expressed by one grant",
    "modifierExtension": "a modifier extension changes the meaning; none is understood",
}


def _codings(value: Any, where: str) -> list[tuple[Any, Any]]:
    """(system, code) of a CodeableConcept's codings."""
    found = json_object(value, where).get("coding")
    return [
        (json_object(c, f"{where}.coding[{i}]").get("system"), c.get("code"))
        for i, c in enumerate(json_list(found, f"{where}.coding"))
    ]


def _identifier(value: Any, where: str, system: str) -> str:
    """The value of a Reference's identifier in ``system`` (no literal references:
    ours are identifiers, not resources on a FHIR server)."""
    found = json_object(json_object(value, where).get("identifier"), f"{where}.identifier")
    if found.get("system") != system:
        raise FormatError(
            f"{where}.identifier.system",
            f"must be {system} (got {found.get('system')!r})",
        )
    val = found.get("value")
    if not isinstance(val, str):
        raise FormatError(f"{where}.identifier.value", "must be a string")
    return val


def _check_patient(resource: Mapping[str, Any], patient: str) -> None:
    """``Consent.patient`` is never copied; a pseudonymous key in it must be the signer's."""
    given = resource.get("patient")
    if not isinstance(given, Mapping):
        return
    found = given.get("identifier")
    if not isinstance(found, Mapping) or found.get("system") != SYSTEM_PATIENT_KEY:
        return
    if str(found.get("value", "")).lower() != patient:
        raise FormatError("patient.identifier", "names another patient key than the signing key")


def _grantee(provision: Mapping[str, Any]) -> str:
    actors = json_list(provision.get("actor"), "provision.actor")
    if len(actors) != 1:
        raise FormatError(
            "provision.actor",
            f"has {len(actors)} actors; a grant has one grantee (split the Consent)",
        )
    actor = json_object(actors[0], "provision.actor[0]")
    roles = _codings(actor.get("role"), "provision.actor[0].role")
    if not any(s == V3_PARTICIPATION_TYPE and c in RECIPIENT_ROLES for s, c in roles):
        raise FormatError(
            "provision.actor[0].role",
            f"must be {V3_PARTICIPATION_TYPE} {' or '.join(RECIPIENT_ROLES)} "
            "(the grantee receives the information)",
        )
    member = _identifier(actor.get("reference"), "provision.actor[0].reference", SYSTEM_MEMBER)
    if not MEMBER_ID.fullmatch(member):
        raise FormatError("provision.actor[0].reference.identifier.value", "is no member id")
    return member


def _purposes(provision: Mapping[str, Any]) -> list[str]:
    out: set[str] = set()
    for i, c in enumerate(json_list(provision.get("purpose"), "provision.purpose")):
        where = f"provision.purpose[{i}]"
        c = json_object(c, where)
        if c.get("system") != V3_ACT_REASON:
            raise FormatError(f"{where}.system", f"must be {V3_ACT_REASON}")
        if c.get("code") not in PURPOSES:
            raise FormatError(
                f"{where}.code",
                f"{c.get('code')!r} is not one of the ledger's purposes ({', '.join(PURPOSES)})",
            )
        out.add(c["code"])
    return sorted(out)


def _period(provision: Mapping[str, Any]) -> dict[str, int]:
    period = json_object(provision.get("period"), "provision.period")
    if "end" not in period:
        raise FormatError("provision.period.end", "is required: a ledger consent always ends")
    start = start_ms(period["start"], "provision.period.start") if "start" in period else 0
    end = end_ms(period["end"], "provision.period.end")
    if end <= start:
        raise FormatError("provision.period", "ends before it starts")
    return {"start": start, "end": end}


def _actions(provision: Mapping[str, Any]) -> None:
    if "action" not in provision:
        return
    codes = [
        pair
        for i, a in enumerate(json_list(provision["action"], "provision.action"))
        for pair in _codings(a, f"provision.action[{i}]")
    ]
    if (CONSENT_ACTION, "access") not in codes and (CONSENT_ACTION, "use") not in codes:
        raise FormatError(
            "provision.action", f"permits neither {CONSENT_ACTION} access nor use: no access grant"
        )


def _records(provision: Mapping[str, Any]) -> list[str]:
    items = json_list(provision["data"], "provision.data")
    out: set[str] = set()
    for i, d in enumerate(items):
        where = f"provision.data[{i}]"
        d = json_object(d, where)
        if d.get("meaning") != "instance":
            raise FormatError(
                f"{where}.meaning", "must be instance (related, dependents, authoredby unmapped)"
            )
        rid = _identifier(d.get("reference"), f"{where}.reference", SYSTEM_RECORD)
        if not RECORD_ID.fullmatch(rid):
            raise FormatError(f"{where}.reference.identifier.value", "is no record id")
        out.add(rid)
    if len(out) > MAX_DATA:
        raise FormatError("provision.data", f"names {len(out)} records; at most {MAX_DATA}")
    return sorted(out)


def _types(provision: Mapping[str, Any]) -> list[str]:
    out: set[str] = set()
    for i, c in enumerate(json_list(provision["class"], "provision.class")):
        where = f"provision.class[{i}]"
        c = json_object(c, where)
        code = c.get("code")
        if c.get("system") not in (RESOURCE_TYPES, LOINC):
            raise FormatError(f"{where}.system", f"must be {RESOURCE_TYPES} or {LOINC}")
        if not isinstance(code, str) or not RECORD_TYPE.fullmatch(code):
            raise FormatError(f"{where}.code", "is no FHIR resource type or LOINC code")
        out.add(code)
    if len(out) > MAX_CLASS:
        raise FormatError("provision.class", f"names {len(out)} types; at most {MAX_CLASS}")
    return sorted(out)


def consent_to_grant(resource: Any, patient: str) -> dict[str, Any]:
    """The ``consent.grant`` body of a FHIR R4 ``Consent`` the patient (key ``patient``,
    64 hex, the signer) gives; ``FormatError`` for whatever cannot be mapped."""
    if not HEX64.fullmatch(patient):
        raise FormatError("", "the patient key must be 64 lowercase hex")
    res = json_object(resource, "Consent")
    if res.get("resourceType") != "Consent":
        raise FormatError("resourceType", f"must be Consent (got {res.get('resourceType')!r})")
    if "modifierExtension" in res:
        raise FormatError("modifierExtension", UNMAPPABLE["modifierExtension"])
    if res.get("status") not in GRANTABLE_STATUSES:
        raise FormatError(
            "status", f"{res.get('status')!r} grants nothing (only {', '.join(GRANTABLE_STATUSES)})"
        )
    if (CONSENT_SCOPE, "patient-privacy") not in _codings(res.get("scope"), "scope"):
        raise FormatError("scope", f"must be {CONSENT_SCOPE} patient-privacy")
    _check_patient(res, patient)
    provision = json_object(res.get("provision"), "provision")
    for name, why in UNMAPPABLE.items():
        if name in provision:
            raise FormatError(f"provision.{name}", why)
    if provision.get("type") != "permit":
        raise FormatError("provision.type", "must be permit (a deny cannot be granted)")
    _actions(provision)
    body: dict[str, Any] = {
        "grantee": _grantee(provision),
        "scope": "all",
        "purpose": _purposes(provision),
        "period": _period(provision),
    }
    if "data" in provision and "class" in provision:
        raise FormatError("provision", "data and class together: a grant is by records or types")
    if "data" in provision:
        body["scope"], body["data"] = "records", _records(provision)
    elif "class" in provision:
        body["scope"], body["class"] = "types", _types(provision)
    return body


def consent_to_fhir(consent: Mapping[str, Any]) -> dict[str, Any]:
    """A FHIR R4 ``Consent`` of a ledger consent (an entry of ``/ehr/patients/{key}/consents``,
    or a ``consent.grant`` body with its ``patient``): the inverse of ``consent_to_grant``."""
    period = consent["period"]
    status = consent.get("status") or ("inactive" if consent.get("revoked") else "active")
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": instant(period["start"]), "end": instant(period["end"] - 1)},
        "actor": [
            {
                "role": concept(V3_PARTICIPATION_TYPE, "IRCP"),
                "reference": ref(SYSTEM_MEMBER, consent["grantee"]),
            }
        ],
        "action": [concept(CONSENT_ACTION, "access")],
        "purpose": [coding(V3_ACT_REASON, p) for p in consent["purpose"]],
    }
    if consent["scope"] == "records":
        provision["data"] = [
            {"meaning": "instance", "reference": ref(SYSTEM_RECORD, rid)} for rid in consent["data"]
        ]
    elif consent["scope"] == "types":
        provision["class"] = [record_type_coding(t) for t in consent["class"]]
    out: dict[str, Any] = {"resourceType": "Consent"}
    if consent.get("consent_id"):
        out["id"] = consent["consent_id"]
        out["identifier"] = [ident(SYSTEM_CONSENT, consent["consent_id"])]
    out |= {
        "status": status,
        "scope": concept(CONSENT_SCOPE, "patient-privacy"),
        "category": [concept(LOINC, PATIENT_CONSENT)],
        "patient": ref(SYSTEM_PATIENT_KEY, consent["patient"]),
    }
    if consent.get("time") is not None:
        out["dateTime"] = instant(consent["time"])
    out["policyRule"] = concept(V3_ACT_CODE, "OPTIN")
    out["provision"] = provision
    return out
