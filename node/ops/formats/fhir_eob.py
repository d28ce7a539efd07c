"""Claim adjudication as a FHIR R4 ``ExplanationOfBenefit``, and settlement as a
``PaymentReconciliation``, from the claim answers of ``GET /v1/claims/{provider}/{claim_id}``.

``ExplanationOfBenefit`` (one claim, ``docs/formats.md``, "Claims"):

* ``id`` = the ``claim.submit`` transaction hash; ``identifier`` = ``urn:hygeia:claim``
  ``<provider>/<claim_id>``; ``created`` = its block time;
* ``status`` ``active``, or ``cancelled`` once reversed or voided; ``outcome``
  ``complete`` (``partial`` for a partly approved claim), ``disposition`` the decision;
* ``patient`` (``urn:hygeia:patient-key``), ``insurer`` and ``provider``
  (``urn:hygeia:member``); ``insurance`` = the prior payers (``focal`` false) then this
  insurer (``focal``), each the patient's coverages there (``urn:hygeia:coverage``
  ``<insurer>/<patient>``), the pre-authorisation in ``preAuthRef``;
* ``related``: the claim it replaces (``prior``), the primary's it cites (``associated``);
* ``diagnosis`` (ICD-10), ``supportingInfo`` the evidence records (``attachment``);
* ``item``: the service code, date, quantity, unit price, net; ``adjudication`` the
  amounts (HL7 adjudication ``submitted``, ``eligible``, ``deductible``, ``copay``,
  ``benefit``) and per adjustment its CARC as ``reason`` (X12 code system), under
  ``adjustmentreason`` (``denialreason`` on a denied line), the CAS group in the
  ``urn:hygeia:extension:cas-group`` extension; the RARCs of ``x12_835.remark_codes``
  likewise without an amount;
* ``total`` (submitted, eligible, benefit) and ``payment`` (what is paid, ``complete``
  or ``partial``).

``PaymentReconciliation`` (the claims of one provider at one insurer, like the 835):
``paymentAmount`` = what is paid on them, ``paymentIdentifier`` = the trace number,
``created``/``paymentDate`` = the block the answers were read at; a ``detail`` per
payment (``payment``, ``urn:hygeia:payment`` ``<insurer>/<payment_ref>``, the claim as
``request``) and per reversed payment (``adjustment``, the amount negated).

Money is ``decimal.Decimal`` made from integer minor units (never a float); FHIR JSON
wants a number, so ``dumps`` writes it, as ``json.dumps(indent=2, sort_keys=True)`` would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from node.ops.formats import FormatError
from node.ops.formats.fhir_common import (
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    concept,
    date,
    ident,
    instant,
    ref,
)
from node.ops.formats.x12_835 import (
    check_claim,
    check_remittance,
    is_reversal,
    minor_digits,
    remark_codes,
)

SYSTEM_CLAIM = "urn:hygeia:claim"  # <provider>/<claim_id>
SYSTEM_COVERAGE = "urn:hygeia:coverage"  # <insurer>/<patient key>: the coverages there
SYSTEM_PAYMENT = "urn:hygeia:payment"  # <insurer>/<payment_ref>
SYSTEM_SERVICE = "urn:hygeia:service-code"  # a policy's service code (CPT, HCPCS or local)
EXT_CAS_GROUP = "urn:hygeia:extension:cas-group"  # valueCode: CO, PR or OA
CARC = "https://x12.org/codes/claim-adjustment-reason-codes"
RARC = "https://x12.org/codes/remittance-advice-remark-codes"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
CLAIM_INFO = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
RELATED_CLAIM = "http://terminology.hl7.org/CodeSystem/ex-relatedclaimrelationship"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
PAYMENT_DETAIL = "http://terminology.hl7.org/CodeSystem/payment-type"
C4BB_DISCRIMINATOR = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBAdjudicationDiscriminator"


# ----------------------------------------------------------------- money and JSON
def money(minor: int, currency: str) -> dict[str, Any]:
    """A FHIR ``Money``: ``minor`` units of ``currency`` as an exact ``Decimal``."""
    return {"value": Decimal(minor).scaleb(-minor_digits(currency)), "currency": currency}


def dumps(obj: Any, level: int = 0) -> str:
    """``obj`` as JSON (indent 2, sorted keys), a ``Decimal`` as a JSON number."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, Mapping) and obj:
        rows = (f"{inner}{json.dumps(k)}: {dumps(obj[k], level + 1)}" for k in sorted(obj))
        return "{\n" + ",\n".join(rows) + f"\n{pad}}}"
    if isinstance(obj, list | tuple) and obj:
        rows = (f"{inner}{dumps(v, level + 1)}" for v in obj)
        return "[\n" + ",\n".join(rows) + f"\n{pad}]"
    return json.dumps(obj)


# ----------------------------------------------------------------- ExplanationOfBenefit
def claim_ident(provider: str, claim_id: str) -> dict[str, str]:
    return ident(SYSTEM_CLAIM, f"{provider}/{claim_id}")


def _coverage(insurer: str, patient: str, focal: bool) -> dict[str, Any]:
    return {
        "focal": focal,
        "coverage": {
            "type": "Coverage",
            "identifier": ident(SYSTEM_COVERAGE, f"{insurer}/{patient}"),
        },
    }


def _insurance(claim: Mapping[str, Any]) -> list[dict[str, Any]]:
    patient = claim["patient"]
    prior = claim.get("cob", {}).get("prior_payers", [])
    out = [_coverage(p, patient, False) for p in prior]
    this = _coverage(claim["insurer"], patient, True)
    if claim.get("preauth"):
        this["preAuthRef"] = [claim["preauth"]]
    return [*out, this]


def _related(claim: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    if claim.get("replaces"):
        out.append(("prior", claim["replaces"]))
    if "cob" in claim:
        out.append(("associated", claim["cob"]["primary_claim"]))
    return [
        {
            "claim": {"identifier": claim_ident(claim["provider"], c)},
            "relationship": concept(RELATED_CLAIM, r),
        }
        for r, c in out
    ]


def _reason(category: str, system: str, code: str, amount: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "category": concept(C4BB_DISCRIMINATOR, category),
        "reason": concept(system, code),
    }
    if amount is not None:
        out["amount"] = amount
    return out


def _adjudication(
    claim: Mapping[str, Any], line: Mapping[str, Any], currency: str
) -> list[dict[str, Any]]:
    def amount(category: str, minor: int) -> dict[str, Any]:
        return {"category": concept(ADJUDICATION, category), "amount": money(minor, currency)}

    out = [amount("submitted", line["submitted"]), amount("eligible", line.get("eligible", 0))]
    for name in ("deductible", "copay"):
        if line.get(name):
            out.append(amount(name, line[name]))
    out.append(amount("benefit", line["benefit"]))
    kind = "denialreason" if line.get("decision") == "denied" else "adjustmentreason"
    for adj in line["adjustments"]:
        entry = _reason(kind, CARC, adj["code"], money(adj["amount"], currency))
        out.append({"extension": [{"url": EXT_CAS_GROUP, "valueCode": adj["group"]}], **entry})
    out += [_reason(kind, RARC, code, None) for code in remark_codes(claim, line)]
    return out


def _item(claim: Mapping[str, Any], line: Mapping[str, Any], currency: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "sequence": line["sequence"],
        "productOrService": concept(SYSTEM_SERVICE, line["service_code"]),
        "servicedDate": line["service_date"],
        "quantity": {"value": line["quantity"]},
        "unitPrice": money(line.get("unit_price", 0), currency),
        "net": money(line["submitted"], currency),
    }
    if line.get("gtin"):
        # the pack as a GS1 element string (AI 01 GTIN, AI 21 serial): a Device's UDI
        out["udi"] = [{"type": "Device", "display": f"(01){line['gtin']}(21){line['serial']}"}]
    out["adjudication"] = _adjudication(claim, line, currency)
    return out


def explanation_of_benefit(claim: Mapping[str, Any], currency: str) -> dict[str, Any]:
    """The ``ExplanationOfBenefit`` (module docstring) of a claim answer; amounts in
    ``currency`` (the policy's). Raises ``FormatError`` for an answer that does not
    hold together (``x12_835.check_claim``)."""
    check_claim(claim)
    minor_digits(currency)
    totals = claim["totals"]
    out: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "id": claim["submitted"]["tx"],
        "identifier": [claim_ident(claim["provider"], claim["claim_id"])],
        "status": "cancelled" if is_reversal(claim) else "active",
        "type": concept(
            CLAIM_TYPE, "pharmacy" if all("gtin" in i for i in claim["items"]) else "professional"
        ),
        "use": "claim",
        "patient": ref(SYSTEM_PATIENT_KEY, claim["patient"]),
        "created": instant(claim["submitted"]["time"]),
        "insurer": ref(SYSTEM_MEMBER, claim["insurer"]),
        "provider": ref(SYSTEM_MEMBER, claim["provider"]),
    }
    related = _related(claim)
    if related:
        out["related"] = related
    out |= {
        "outcome": "partial" if claim["decision"] == "partial" else "complete",
        "disposition": claim["decision"] if not is_reversal(claim) else claim["status"],
    }
    evidence = claim.get("evidence") or []
    if evidence:
        out["supportingInfo"] = [
            {
                "sequence": n,
                "category": concept(CLAIM_INFO, "attachment"),
                "valueReference": ref(SYSTEM_RECORD, record_id),
            }
            for n, record_id in enumerate(evidence, 1)
        ]
    diagnosis = claim.get("diagnosis") or []
    if diagnosis:
        out["diagnosis"] = [
            {"sequence": n, "diagnosisCodeableConcept": concept(ICD10, code)}
            for n, code in enumerate(diagnosis, 1)
        ]
    out["insurance"] = _insurance(claim)
    out["item"] = [_item(claim, line, currency) for line in claim["items"]]
    out["total"] = [
        {"category": concept(ADJUDICATION, name), "amount": money(totals[name], currency)}
        for name in ("submitted", "eligible", "benefit")
        if name in totals
    ]
    if claim["paid"]:
        kind = "complete" if claim["paid"] == totals["benefit"] else "partial"
        out["payment"] = {
            "type": concept(PAYMENT_TYPE, kind),
            "amount": money(claim["paid"], currency),
        }
    return out


# ----------------------------------------------------------------- PaymentReconciliation
def _details(claim: Mapping[str, Any], currency: str) -> list[dict[str, Any]]:
    request = {"identifier": claim_ident(claim["provider"], claim["claim_id"])}
    out: list[dict[str, Any]] = []
    for p in claim.get("payments") or []:
        base = {
            "identifier": ident(SYSTEM_PAYMENT, f"{claim['insurer']}/{p['payment_ref']}"),
            "request": request,
            "payee": ref(SYSTEM_MEMBER, claim["provider"]),
        }
        out.append(
            {
                **base,
                "type": concept(PAYMENT_DETAIL, "payment"),
                "amount": money(p["amount"], currency),
            }
        )
        if p["status"] == "reversed":
            out.append(
                {
                    **base,
                    "type": concept(PAYMENT_DETAIL, "adjustment"),
                    "amount": money(-p["amount"], currency),
                }
            )
    return out


def payment_reconciliation(
    claims: Sequence[Mapping[str, Any]], *, currency: str, time_ms: int, trace: str
) -> dict[str, Any]:
    """The ``PaymentReconciliation`` (module docstring) of claim answers of one provider
    at one insurer, read at the block of time ``time_ms``. Raises ``FormatError``."""
    provider, insurer = check_remittance(claims)
    if not isinstance(trace, str) or not trace:
        raise FormatError("trace", "must be a non-empty string")
    paid = sum(c["paid"] for c in claims)
    details = [d for c in claims for d in _details(c, currency)]  # they add up to paid
    out: dict[str, Any] = {
        "resourceType": "PaymentReconciliation",
        "status": "active",
        "created": instant(time_ms),
        "paymentIssuer": ref(SYSTEM_MEMBER, insurer),
        "requestor": ref(SYSTEM_MEMBER, provider),
        "outcome": "complete",
        "paymentDate": date(time_ms),
        "paymentAmount": money(paid, currency),
        "paymentIdentifier": {"value": trace},
    }
    if details:
        out["detail"] = details
    return out
