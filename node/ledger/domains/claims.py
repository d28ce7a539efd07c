"""Insurance: policies, coverage, pre-authorisation, claims, settlement.

Transaction types (``docs/claims.md`` has the field mapping to FHIR Claim,
ClaimResponse, Coverage and the X12 835/837 codes):

* ``policy.publish`` (insurer): a policy as a declarative contract, data not
  code. A new publish of the same ``policy_id`` is its next version; each
  version has an ``effective`` date (default: the block's date; never before
  the block's date nor before the previous version's). A claim line uses the
  version *in force at its service date* (the highest version whose
  ``effective`` <= the service date).
* ``coverage.enroll`` (insurer): a patient key to one of its policies, with a
  period (inclusive dates).
* ``preauth.request`` (provider) and ``preauth.decide`` (insurer).
* ``claim.submit`` (provider): adjudicated at commit, deterministically; the
  result data is the explanation of benefits (EOB). With ``primary_claim`` it is
  a secondary payer's claim (coordination of benefits, ``claims_cob``); with
  ``replaces`` it replaces the provider's unpaid claim (``claims_void``).
* ``claim.settle`` (insurer), ``claim.reverse`` (insurer) and ``claim.void``
  (provider, ``claims_void``).

Adjudication of a line (``_adjudicate_line``): the first denial that applies
(a service date after the block's date, fraud, coverage, policy, evidence,
pre-authorisation), else the money arithmetic of ``claims_pricing`` (allowed
amount, deductible, copays, annual limit; for a secondary payer, at most what
the prior payer left to the patient) against the patient's accumulators for the
policy and calendar year, the UTC year of the block time.

Fraud checks flag the claim and deny the items concerned: a duplicate
(same patient, provider, service code, service date and drug pack, at any
insurer), an evidence record that is not an anchored record of that patient by
that provider (``node.ledger.domains.ehr.record_info``), a drug item whose serial
that provider did not dispense (``node.ledger.domains.supply.serial_info``).
Formats, keys and the signer checks are in ``claims_core``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ledger.context import ExecContext
from node.ledger.domain import (
    Domain,
    PatientScope,
    Query,
    hex64_param,
    int_param,
    pattern_param,
)
from node.ledger.domains import claims_cob, claims_void, ehr, supply
from node.ledger.domains.claims_cob import Citation
from node.ledger.domains.claims_core import (
    CODE,
    CURRENCY,
    ICD,
    ID,
    MAX_AMOUNT,
    MAX_COVERAGES,
    MAX_PAYMENTS,
    MAX_QUANTITY,
    MAX_VERSIONS,
    REASON,
    Date,
    accumulator_key,
    authorize_insurer,
    authorize_provider,
    block_date,
    block_year,
    claim_key,
    claim_state_key,
    cob_key,
    coverage_key,
    get_frozen,
    insurer_index_key,
    is_active_insurer,
    ledger_add,
    ledger_key,
    line_duplicate_key,
    member_id,
    payment_key,
    policy_key,
    policy_version_key,
    preauth_key,
)
from node.ledger.domains.claims_pricing import (
    BP,
    claim_totals,
    coordinate,
    denied_line,
    patient_responsibility,
    price_line,
)
from node.ledger.gs1 import GTIN_RE, PRINTABLE_SERIAL
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Bool, Hex64, Int, List, Obj, Str
from node.ledger.state import BlockState

# ------------------------------------------------------------------ policy.publish
POLICY_SCHEMA = Obj(
    {
        "policy_id": Str(pattern=ID),
        "effective": Date(optional=True),
        "currency": Str(min_len=3, max_len=3, pattern=CURRENCY),
        "services": List(
            Obj({"code": Str(max_len=32, pattern=CODE), "allowed": Int(max=MAX_AMOUNT)}),
            min_items=1,
            max_items=256,
        ),
        "copay_bp": Int(max=BP, optional=True),
        "copay_fixed": Int(max=MAX_AMOUNT, optional=True),
        "deductible": Int(max=MAX_AMOUNT * 1000, optional=True),
        "annual_limit": Int(max=MAX_AMOUNT * 1000, optional=True),
        "preauth_codes": List(
            Str(max_len=32, pattern=CODE), max_items=256, unique=True, optional=True
        ),
        "evidence_required": Bool(optional=True),
    }
)


def _publish(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    insurer = member_id(ctx)
    services: dict[str, int] = {}
    for i, svc in enumerate(body["services"]):
        if svc["code"] in services:
            raise Rejection("invalid-policy", f"services[{i}].code {svc['code']} repeated")
        services[svc["code"]] = svc["allowed"]
    preauth = sorted(body.get("preauth_codes", []))
    for code in preauth:
        if code not in services:
            raise Rejection("invalid-policy", f"preauth code {code} is not a covered service")
    today = block_date(ctx.block.time_ms)
    effective = body.get("effective", today)
    if effective < today:
        raise Rejection("invalid-policy", f"effective {effective} is before the block date {today}")
    head = ctx.state.get(policy_key(body["policy_id"]))
    if head is None:
        head = {"policy_id": body["policy_id"], "insurer": insurer, "effective": []}
    elif head["insurer"] != insurer:
        raise Rejection("not-owner", f"policy {body['policy_id']} belongs to {head['insurer']}")
    elif len(head["effective"]) >= MAX_VERSIONS:
        raise Rejection("too-many-versions", f"a policy has at most {MAX_VERSIONS} versions")
    elif effective < head["effective"][-1]:
        raise Rejection(
            "invalid-policy", f"effective {effective} is before version {len(head['effective'])}'s"
        )
    version = len(head["effective"]) + 1
    head["effective"].append(effective)
    head["latest"] = version
    record = {
        "policy_id": body["policy_id"],
        "version": version,
        "insurer": insurer,
        "effective": effective,
        "currency": body["currency"],
        "services": services,
        "copay_bp": body.get("copay_bp", 0),
        "copay_fixed": body.get("copay_fixed", 0),
        "deductible": body.get("deductible", 0),
        "annual_limit": body.get("annual_limit"),
        "preauth_codes": preauth,
        "evidence_required": body.get("evidence_required", False),
        "published": {"height": ctx.block.height, "time": ctx.block.time_ms, "tx": ctx.tx.hash},
    }
    ctx.state.put(policy_key(body["policy_id"]), head)
    ctx.state.put(policy_version_key(body["policy_id"], version), record)
    return {"policy_id": body["policy_id"], "version": version, "effective": effective}


# ------------------------------------------------------------------ coverage.enroll
def _enroll(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    insurer = member_id(ctx)
    head = ctx.state.get(policy_key(body["policy_id"]))
    if head is None:
        raise Rejection("unknown-policy", f"no policy {body['policy_id']}")
    if head["insurer"] != insurer:
        raise Rejection("not-owner", f"policy {body['policy_id']} belongs to {head['insurer']}")
    if body["end"] < body["start"]:
        raise Rejection("invalid-period", "end is before start")
    key = coverage_key(insurer, body["patient"])
    entry = ctx.state.get(key) or {"insurer": insurer, "patient": body["patient"], "coverages": []}
    if any(c["coverage_id"] == body["coverage_id"] for c in entry["coverages"]):
        raise Rejection("coverage-exists", f"coverage {body['coverage_id']} already enrolled")
    if len(entry["coverages"]) >= MAX_COVERAGES:
        raise Rejection("too-many-coverages", f"at most {MAX_COVERAGES} per patient and insurer")
    entry["coverages"].append(
        {
            "coverage_id": body["coverage_id"],
            "policy_id": body["policy_id"],
            "start": body["start"],
            "end": body["end"],
            "height": ctx.block.height,
        }
    )
    ctx.state.put(key, entry)
    return {"coverage_id": body["coverage_id"], "policy_id": body["policy_id"]}


# ------------------------------------------------------------------ pre-authorisation
def _preauth_request(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    provider = member_id(ctx)
    if not is_active_insurer(ctx.state, body["insurer"]):
        raise Rejection("unknown-insurer", f"{body['insurer']} is not an active insurer")
    key = preauth_key(provider, body["preauth_id"])
    if ctx.state.exists(key):
        raise Rejection("preauth-exists", f"pre-authorisation {body['preauth_id']} exists")
    record = {
        "preauth_id": body["preauth_id"],
        "provider": provider,
        "insurer": body["insurer"],
        "patient": body["patient"],
        "service_codes": body["service_codes"],
        "diagnosis": body.get("diagnosis", []),
        "status": "requested",
        "expires": None,
        "reason": None,
        "requested": {"height": ctx.block.height, "time": ctx.block.time_ms},
    }
    ctx.state.put(key, record)
    return {"preauth_id": body["preauth_id"], "status": "requested"}


def _preauth_decide(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    insurer = member_id(ctx)
    key = preauth_key(body["provider"], body["preauth_id"])
    record = ctx.state.get(key)
    if record is None:
        raise Rejection("unknown-preauth", f"no pre-authorisation {body['preauth_id']}")
    if record["insurer"] != insurer:
        raise Rejection("not-owner", f"pre-authorisation is addressed to {record['insurer']}")
    if record["status"] != "requested":
        raise Rejection("already-decided", f"pre-authorisation is {record['status']}")
    if body["decision"] == "denied" and "expires" in body:
        raise Rejection("malformed", "body.expires: only an approval expires")
    record["status"] = body["decision"]
    record["expires"] = body.get("expires")
    record["reason"] = body.get("reason")
    record["decided"] = {"height": ctx.block.height, "time": ctx.block.time_ms}
    ctx.state.put(key, record)
    return {"preauth_id": body["preauth_id"], "status": record["status"]}


# ------------------------------------------------------------------ claim.submit
class _Adjudicator:
    """One claim under adjudication: its parties and evidence, per-claim caches of
    policy versions and accumulators, the flags raised, and the duplicate-index keys
    its lines take (accumulators and index written back at the end). A claim citing a
    prior payer's claim (``cob``) takes per-payer keys and pays at most what the
    prior payer left to the patient (``claims_cob``)."""

    def __init__(self, ctx: ExecContext, provider: str, cob: Citation | None) -> None:
        body = ctx.tx.body
        self.state = ctx.state
        self.provider = provider
        self.insurer: str = body["insurer"]
        self.patient: str = body["patient"]
        self.claim_id: str = body["claim_id"]
        self.year = block_year(ctx.block.time_ms)
        self.today = block_date(ctx.block.time_ms)
        self.cob = cob
        self.evidence: list[str] = body.get("evidence", [])
        self.flags = _check_evidence(self.state, self.evidence, self.patient, provider)
        self.evidence_flagged = bool(self.flags)
        self.preauth: dict[str, Any] | None = (
            self.state.get(preauth_key(provider, body["preauth"])) if "preauth" in body else None
        )
        cov = ctx.state.get(coverage_key(self.insurer, self.patient))
        self.coverages: list[dict[str, Any]] = cov["coverages"] if cov else []
        self.heads: dict[str, dict[str, Any] | None] = {}
        self.versions: dict[tuple[str, int], dict[str, Any]] = {}
        self.accums: dict[str, dict[str, int]] = {}
        self.duplicate_keys: dict[bytes, int] = {}  # key -> sequence of the line that took it

    def coverage_at(self, date: str) -> tuple[dict[str, Any] | None, str]:
        """The first enrolled coverage whose period holds ``date``, or a denial CARC."""
        if not self.coverages:
            return None, "31"  # patient cannot be identified as our insured
        reason = "27"
        for cov in self.coverages:
            if cov["start"] <= date <= cov["end"]:
                return cov, ""
            if date < cov["start"]:
                reason = "26"
        return None, reason

    def policy_at(self, policy_id: str, date: str) -> dict[str, Any] | None:
        if policy_id not in self.heads:
            self.heads[policy_id] = get_frozen(self.state, policy_key(policy_id))
        head = self.heads[policy_id]
        if head is None:
            return None
        version = 0
        for i, eff in enumerate(head["effective"]):
            if eff <= date:
                version = i + 1
        if version == 0:
            return None
        ident = (policy_id, version)
        if ident not in self.versions:
            self.versions[ident] = get_frozen(self.state, policy_version_key(policy_id, version))
        return self.versions[ident]

    def preauthorised(self, code: str, date: str) -> bool:
        """Is the claim's ``preauth`` an approved pre-authorisation of this provider,
        patient and insurer that lists ``code`` and has not expired by ``date``?"""
        p = self.preauth
        return (
            p is not None
            and p["status"] == "approved"
            and p["patient"] == self.patient
            and p["insurer"] == self.insurer
            and code in p["service_codes"]
            and (p["expires"] is None or date <= p["expires"])
        )

    def key_of(self, item: dict[str, Any]) -> bytes:
        """The key line ``item`` takes: its duplicate-index key, or for a claim citing
        a prior payer's, the per-payer coordination-of-benefits key of that service."""
        dkey = line_duplicate_key(self.patient, self.provider, item)
        return cob_key(self.insurer, dkey) if self.cob is not None else dkey

    def price(self, seq: int, item: dict[str, Any], policy: dict[str, Any]) -> dict[str, Any]:
        """Line ``seq``, covered, priced by ``policy`` against this year's accumulators,
        which it then adds to; as a secondary payer's line, coordinated with what the
        prior payer left to the patient (``claims_pricing.coordinate``)."""
        policy_id = policy["policy_id"]
        if policy_id not in self.accums:
            key = accumulator_key(self.insurer, self.patient, policy_id, self.year)
            self.accums[policy_id] = self.state.get(key) or {"deductible_met": 0, "benefit": 0}
        acc = self.accums[policy_id]
        priced = price_line(
            quantity=item["quantity"],
            unit_price=item["unit_price"],
            allowed=policy["services"][item["service_code"]],
            deductible=policy["deductible"],
            copay_fixed=policy["copay_fixed"],
            copay_bp=policy["copay_bp"],
            annual_limit=policy["annual_limit"],
            deductible_met=acc["deductible_met"],
            benefit_paid=acc["benefit"],
        )
        if self.cob is not None:
            priced = coordinate(priced, self.cob.left[seq - 1])
        acc["deductible_met"] += priced["deductible"]
        acc["benefit"] += priced["benefit"]
        return priced

    def index_entry(self, seq: int) -> dict[str, Any]:
        """What the duplicate index holds for line ``seq`` of this claim."""
        return {
            "provider": self.provider,
            "insurer": self.insurer,
            "claim_id": self.claim_id,
            "item": seq,
        }

    def write_back(self) -> None:
        for policy_id, acc in self.accums.items():
            key = accumulator_key(self.insurer, self.patient, policy_id, self.year)
            self.state.put(key, acc)
        for dkey, seq in self.duplicate_keys.items():
            self.state.put(dkey, self.index_entry(seq))


def _check_evidence(
    state: BlockState, evidence: list[str], patient: str, provider: str
) -> list[dict[str, Any]]:
    """Flags for every evidence id that is not an anchored record of ``patient`` by ``provider``."""
    flags: list[dict[str, Any]] = []
    for record_id in evidence:
        info = ehr.record_info(state, record_id)
        if info is None:
            why = "not-anchored"
        elif info.get("patient") != patient:
            why = "other-patient"
        elif info.get("custodian") != provider:
            why = "other-custodian"
        else:
            continue
        flags.append({"code": "evidence-mismatch", "record_id": record_id, "why": why})
    return flags


def _check_drug(state: BlockState, item: dict[str, Any], provider: str) -> str | None:
    """Why the provider cannot claim this drug pack, or None if it dispensed it."""
    info = supply.serial_info(state, item["gtin"], item["serial"])
    if info is None:
        return "unknown-serial"
    if info.get("dispensed_by") != provider:
        return "not-dispensed-by-provider"
    return None


def _judge(
    adj: _Adjudicator, seq: int, item: dict[str, Any], submitted: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The ladder of ``_adjudicate_line`` below the service-date check: the priced (or
    denied) line and the policy version that priced it (None when a denial came first)."""
    code, date = item["service_code"], item["service_date"]
    dkey = adj.key_of(item)
    original = adj.state.get(dkey)
    if original is None and adj.cob is None:
        # this payer paid the service already, as a secondary: its primary's claim was
        # reversed since (which freed the shared key), the secondary's still stands
        original = adj.state.get(cob_key(adj.insurer, dkey))
    if original is None and dkey in adj.duplicate_keys:
        original = adj.index_entry(adj.duplicate_keys[dkey])
    if original is not None:
        adj.flags.append(
            {
                "code": "duplicate",
                "item": seq,
                "original": original,
                "cross_insurer": original["insurer"] != adj.insurer,
            }
        )
        return denied_line(submitted, "OA", "18"), None
    adj.duplicate_keys[dkey] = seq
    drug_why = _check_drug(adj.state, item, adj.provider) if "gtin" in item else None
    if drug_why is not None:
        adj.flags.append({"code": "drug-not-dispensed", "item": seq, "why": drug_why})
        return denied_line(submitted, "CO", "16"), None
    if adj.evidence_flagged:
        return denied_line(submitted, "CO", "16"), None
    cov, cov_reason = adj.coverage_at(date)
    if cov is None:
        return denied_line(submitted, "CO", cov_reason), None
    policy = adj.policy_at(cov["policy_id"], date)
    if policy is None:
        return denied_line(submitted, "CO", "26"), None  # no version in force yet
    if policy["evidence_required"] and not adj.evidence:
        return denied_line(submitted, "CO", "252"), None
    if code not in policy["services"]:
        return denied_line(submitted, "CO", "96"), None
    if code in policy["preauth_codes"] and not adj.preauthorised(code, date):
        return denied_line(submitted, "CO", "197"), None
    return adj.price(seq, item, policy), policy


def _adjudicate_line(adj: _Adjudicator, seq: int, item: dict[str, Any]) -> dict[str, Any]:
    """Line ``seq`` of the claim as its explanation of benefits shows it: decision,
    amounts and adjustments (docs/claims.md, "Adjudication").

    The first of these that applies denies the line, one adjustment of the whole
    submitted amount: a service date after the block's UTC date (CO 110); a
    duplicate of a line of this or an earlier claim (OA 18, flagged); a drug pack
    this provider did not dispense (CO 16, flagged); evidence flagged on the claim
    (CO 16); no coverage at the service date (CO 31, 26 or 27); no policy version in
    force (CO 26); evidence required and none given (CO 252); a service code the
    policy does not cover (CO 96); a code that needs a pre-authorisation the claim
    does not carry (CO 197). Otherwise the policy version in force at the service
    date prices it (``claims_pricing.price_line``, and ``coordinate`` for a
    secondary payer).

    A line dated in the future takes no key; any other line that is no duplicate
    takes its duplicate-index (or coordination-of-benefits) key, whatever its
    decision. A line the policy priced names it (``policy_id``, ``policy_version``),
    even when the annual limit denies it: its amounts went into the accumulators.
    """
    code, date = item["service_code"], item["service_date"]
    submitted = item["quantity"] * item["unit_price"]
    policy: dict[str, Any] | None = None
    if date > adj.today:
        priced = denied_line(submitted, "CO", "110")  # billing date predates service date
    else:
        priced, policy = _judge(adj, seq, item, submitted)
    denied = priced.pop("denied")
    line = {
        "sequence": seq,
        "service_code": code,
        "service_date": date,
        "quantity": item["quantity"],
        "unit_price": item["unit_price"],
        **({"gtin": item["gtin"], "serial": item["serial"]} if "gtin" in item else {}),
        "policy_id": policy["policy_id"] if policy else None,
        "policy_version": policy["version"] if policy else None,
        "decision": "denied" if denied else "approved",
        **priced,
        "patient_responsibility": patient_responsibility(priced["adjustments"]),
    }
    if adj.cob is not None:
        line["cob"] = {"primary_item": adj.cob.lines[seq - 1], "left": adj.cob.left[seq - 1]}
    return line


def _replaceable(
    state: BlockState, provider: str, body: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The claim ``body["replaces"]`` names, checked to be replaceable by this one
    (``claims_void.voidable``, and the same insurer and patient, else
    ``replacement-mismatch``); None without ``replaces``."""
    if "replaces" not in body:
        return None
    claim, st = claims_void.voidable(state, provider, body["replaces"])
    if (claim["insurer"], claim["patient"]) != (body["insurer"], body["patient"]):
        raise Rejection(
            "replacement-mismatch",
            f"claim {body['replaces']} is another insurer's or patient's: void it instead",
        )
    return claim, st


def _submit(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    state = ctx.state
    provider = member_id(ctx)
    insurer = body["insurer"]
    key = claim_key(provider, body["claim_id"])
    if state.exists(key):
        raise Rejection("claim-exists", f"claim {body['claim_id']} exists")
    if not is_active_insurer(state, insurer):
        raise Rejection("unknown-insurer", f"{insurer} is not an active insurer")
    for i, item in enumerate(body["items"]):
        if ("gtin" in item) != ("serial" in item):
            raise Rejection("malformed", f"body.items[{i}]: gtin and serial go together")
    replaced = _replaceable(state, provider, body)
    cob = claims_cob.cite(state, provider, body) if "primary_claim" in body else None
    if replaced is not None:  # frequency 7: the original is voided first, then this adjudicated
        claims_void.void(ctx, *replaced, "replaced", replaced_by=body["claim_id"])

    adj = _Adjudicator(ctx, provider, cob)
    items_out = [_adjudicate_line(adj, seq, item) for seq, item in enumerate(body["items"], 1)]
    adj.write_back()
    if cob is not None:
        claims_cob.add_citation(state, provider, cob.claim_id, body["claim_id"])
    decisions = {i["decision"] for i in items_out}
    decision = (
        "approved"
        if decisions == {"approved"}
        else "denied"
        if decisions == {"denied"}
        else "partial"
    )
    totals = claim_totals(items_out)
    claim = {
        "claim_id": body["claim_id"],
        "provider": provider,
        "insurer": insurer,
        "patient": body["patient"],
        "diagnosis": body["diagnosis"],
        "evidence": adj.evidence,
        "preauth": body.get("preauth"),
        **({"replaces": body["replaces"]} if replaced is not None else {}),
        **({"cob": cob.record()} if cob is not None else {}),
        "year": adj.year,
        "decision": decision,
        "status": "active",
        "items": items_out,
        "totals": totals,
        "flags": adj.flags,
        "submitted": {"height": ctx.block.height, "time": ctx.block.time_ms, "tx": ctx.tx.hash},
    }
    state.put(key, claim)
    state.put(
        claim_state_key(provider, body["claim_id"]),
        {
            "insurer": insurer,
            "status": "active",
            "benefit": totals["benefit"],
            "paid": 0,
            "payments": [],
        },
    )
    state.put(insurer_index_key(insurer, provider, body["claim_id"]), decision)
    ledger_add(state, provider, insurer, totals["benefit"], 0, 1)
    return {
        "claim_id": body["claim_id"],
        "decision": decision,
        "totals": totals,
        "flags": adj.flags,
        **({"replaces": body["replaces"]} if replaced is not None else {}),
        "items": [
            {k: i[k] for k in ("sequence", "decision", "eligible", "benefit", "adjustments")}
            for i in items_out
        ],
    }


# ------------------------------------------------------------------ settlement
def _claim_for_insurer(ctx: ExecContext) -> tuple[bytes, dict[str, Any], str]:
    """The claim's settlement state (small, mutable), checked to be addressed to the signer."""
    body = ctx.tx.body
    insurer = member_id(ctx)
    key = claim_state_key(body["provider"], body["claim_id"])
    st = ctx.state.get(key)
    if st is None:
        raise Rejection("unknown-claim", f"no claim {body['claim_id']} of {body['provider']}")
    if st["insurer"] != insurer:
        raise Rejection("not-owner", f"claim {body['claim_id']} is addressed to {st['insurer']}")
    return key, st, insurer


def _settle(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    key, st, insurer = _claim_for_insurer(ctx)
    if st["status"] == "voided":
        raise Rejection("claim-voided", f"claim {body['claim_id']} is voided by its provider")
    if st["status"] != "active":
        raise Rejection("claim-reversed", f"claim {body['claim_id']} is reversed")
    outstanding = st["benefit"] - st["paid"]
    if body["amount"] > outstanding:
        raise Rejection(
            "over-settlement", f"amount {body['amount']} exceeds the outstanding {outstanding}"
        )
    if len(st["payments"]) >= MAX_PAYMENTS:
        raise Rejection("too-many-payments", f"a claim has at most {MAX_PAYMENTS} payments")
    pkey = payment_key(insurer, body["payment_ref"])
    if ctx.state.exists(pkey):
        raise Rejection("payment-exists", f"payment {body['payment_ref']} already recorded")
    ctx.state.put(
        pkey,
        {
            "payment_ref": body["payment_ref"],
            "insurer": insurer,
            "provider": body["provider"],
            "claim_id": body["claim_id"],
            "amount": body["amount"],
            "status": "paid",
            "height": ctx.block.height,
            "time": ctx.block.time_ms,
        },
    )
    st["paid"] += body["amount"]
    st["payments"].append(
        {"payment_ref": body["payment_ref"], "amount": body["amount"], "status": "paid"}
    )
    ctx.state.put(key, st)
    ledger_add(ctx.state, body["provider"], insurer, 0, body["amount"])
    return {
        "claim_id": body["claim_id"],
        "paid": st["paid"],
        "outstanding": st["benefit"] - st["paid"],
    }


def _reverse(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    key, st, insurer = _claim_for_insurer(ctx)
    state = ctx.state
    if "payment_ref" in body:
        pkey = payment_key(insurer, body["payment_ref"])
        payment = state.get(pkey)
        if payment is None or (payment["provider"], payment["claim_id"]) != (
            body["provider"],
            body["claim_id"],
        ):
            raise Rejection("unknown-payment", f"no payment {body['payment_ref']} of this claim")
        if payment["status"] != "paid":
            raise Rejection("already-reversed", f"payment {body['payment_ref']} is reversed")
        payment["status"] = "reversed"
        payment["reason"] = body["reason"]
        state.put(pkey, payment)
        st["paid"] -= payment["amount"]
        for p in st["payments"]:
            if p["payment_ref"] == body["payment_ref"]:
                p["status"] = "reversed"
        state.put(key, st)
        ledger_add(state, body["provider"], insurer, 0, -payment["amount"])
        return {
            "claim_id": body["claim_id"],
            "payment_ref": body["payment_ref"],
            "paid": st["paid"],
        }
    if st["status"] == "voided":
        raise Rejection("claim-voided", f"claim {body['claim_id']} is voided by its provider")
    if st["status"] != "active":
        raise Rejection("already-reversed", f"claim {body['claim_id']} is reversed")
    if st["paid"] != 0:
        raise Rejection("claim-paid", "reverse its settlements first")
    claim = state.get(claim_key(body["provider"], body["claim_id"]))
    claims_void.release(state, claim)
    st["status"] = "reversed"
    st["reversal"] = {"reason": body["reason"], "height": ctx.block.height}
    state.put(key, st)
    state.put(insurer_index_key(insurer, claim["provider"], claim["claim_id"]), "reversed")
    ledger_add(state, claim["provider"], insurer, -st["benefit"], 0)
    return {"claim_id": body["claim_id"], "status": "reversed"}


# ------------------------------------------------------------------ queries
def _id_param(value: str, name: str) -> str:
    return pattern_param(value, name, ID)


def _limit(query: Mapping[str, str]) -> int:
    return int_param(query, "limit", 100, 1, 1000)


def _claim_view(state: BlockState, provider: str, claim_id: str) -> dict[str, Any] | None:
    """The explanation of benefits with its settlement state."""
    claim = state.get(claim_key(provider, claim_id))
    if claim is None:
        return None
    st = state.get(claim_state_key(provider, claim_id))
    outstanding = st["benefit"] - st["paid"] if st["status"] == "active" else 0
    view: dict[str, Any] = {
        **claim,
        "status": st["status"],
        "paid": st["paid"],
        "outstanding": outstanding,
        "payments": st["payments"],
    }
    for extra in ("reversal", "void", "cited_by"):
        if extra in st:
            view[extra] = st[extra]
    return view


def _q_claim(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    return _claim_view(
        state, _id_param(path["provider"], "provider"), _id_param(path["claim_id"], "claim_id")
    )


def _summary(claim: dict[str, Any]) -> dict[str, Any]:
    return {
        "claim_id": claim["claim_id"],
        "provider": claim["provider"],
        "insurer": claim["insurer"],
        "decision": claim["decision"],
        "status": claim["status"],
        "benefit": claim["totals"]["benefit"],
        "paid": claim["paid"],
        "flags": sorted({f["code"] for f in claim["flags"]}),
    }


def _statement(rows: list[dict[str, Any]], claims: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "pairs": rows,
        "totals": {
            k: sum(r[k] for r in rows) for k in ("approved", "paid", "outstanding", "claims")
        },
        "claims": claims,
    }


def _q_provider_statement(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    provider = _id_param(path["member"], "member")
    limit = _limit(query)
    rows = [v for _, v in state.iter_prefix(ledger_key(provider, ""))]
    claims: list[dict[str, Any]] = []
    for k, _ in state.iter_prefix(b"claims/claimst/" + provider.encode() + b"/"):
        if len(claims) >= limit:
            break
        view = _claim_view(state, provider, k.decode().split("/", 3)[3])
        assert view is not None
        claims.append(_summary(view))
    return {"member": provider, "role": "provider", **_statement(rows, claims)}


def _q_insurer_statement(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    insurer = _id_param(path["member"], "member")
    limit = _limit(query)
    rows = [v for _, v in state.iter_prefix(b"claims/ledger/") if v["insurer"] == insurer]
    claims: list[dict[str, Any]] = []
    for k, _ in state.iter_prefix(b"claims/byins/" + insurer.encode() + b"/"):
        if len(claims) >= limit:
            break
        _, _, _, provider, claim_id = k.decode().split("/", 4)
        view = _claim_view(state, provider, claim_id)
        assert view is not None
        claims.append(_summary(view))
    return {"member": insurer, "role": "insurer", **_statement(rows, claims)}


def _q_policy(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    policy_id = _id_param(path["policy_id"], "policy_id")
    head = state.get(policy_key(policy_id))
    if head is None:
        return None
    versions = [state.get(policy_version_key(policy_id, n)) for n in range(1, head["latest"] + 1)]
    return {
        "policy_id": policy_id,
        "insurer": head["insurer"],
        "latest": head["latest"],
        "versions": versions,
    }


def _q_coverage(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    insurer = _id_param(path["insurer"], "insurer")
    patient = hex64_param(path["patient"], "patient")
    found: dict[str, Any] | None = state.get(coverage_key(insurer, patient))
    return found


def _q_preauth(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    key = preauth_key(
        _id_param(path["provider"], "provider"), _id_param(path["preauth_id"], "preauth_id")
    )
    found: dict[str, Any] | None = state.get(key)
    return found


# ------------------------------------------------------------------ the domain
MEMBER = Str(pattern=ID)
CODES = List(Str(max_len=32, pattern=CODE), min_items=1, max_items=32, unique=True)
DIAGNOSES = List(Str(max_len=8, pattern=ICD), min_items=1, max_items=12, unique=True)

POLICY_PUBLISH = TxType(
    "policy.publish",
    POLICY_SCHEMA,
    authorize_insurer,
    _publish,
    "publish (a new version of) an insurance policy: a declarative contract",
)
COVERAGE_ENROLL = TxType(
    "coverage.enroll",
    Obj(
        {
            "coverage_id": Str(pattern=ID),
            "patient": Hex64(),
            "policy_id": Str(pattern=ID),
            "start": Date(),
            "end": Date(),
        }
    ),
    authorize_insurer,
    _enroll,
    "enroll a patient key in one of the insurer's policies for a period",
)
PREAUTH_REQUEST = TxType(
    "preauth.request",
    Obj(
        {
            "preauth_id": Str(pattern=ID),
            "patient": Hex64(),
            "insurer": MEMBER,
            "service_codes": CODES,
            "diagnosis": List(Str(max_len=8, pattern=ICD), max_items=12, optional=True),
        }
    ),
    authorize_provider,
    _preauth_request,
    "a provider asks an insurer to pre-authorise services for a patient",
)
PREAUTH_DECIDE = TxType(
    "preauth.decide",
    Obj(
        {
            "provider": MEMBER,
            "preauth_id": Str(pattern=ID),
            "decision": Str(choices=("approved", "denied")),
            "expires": Date(optional=True),
            "reason": Str(pattern=REASON, optional=True),
        }
    ),
    authorize_insurer,
    _preauth_decide,
    "the insurer approves (until an optional date) or denies a pre-authorisation",
)
CLAIM_SUBMIT = TxType(
    "claim.submit",
    Obj(
        {
            "claim_id": Str(pattern=ID),
            "patient": Hex64(),
            "insurer": MEMBER,
            "items": List(
                Obj(
                    {
                        "service_code": Str(max_len=32, pattern=CODE),
                        "quantity": Int(min=1, max=MAX_QUANTITY),
                        "unit_price": Int(max=MAX_AMOUNT),
                        "service_date": Date(),
                        # looked up, not trusted: no check digit, printable ASCII (gs1.py)
                        "gtin": Str(min_len=14, max_len=14, pattern=GTIN_RE, optional=True),
                        "serial": Str(max_len=20, pattern=PRINTABLE_SERIAL, optional=True),
                    }
                ),
                min_items=1,
                max_items=50,
            ),
            "diagnosis": DIAGNOSES,
            "evidence": List(Str(pattern=ID), max_items=16, unique=True, optional=True),
            "preauth": Str(pattern=ID, optional=True),
            # coordination of benefits: the prior payer's claim of this provider (claims_cob)
            "primary_claim": Str(pattern=ID, optional=True),
            # claim frequency 7: the claim of this provider this one replaces (claims_void)
            "replaces": Str(pattern=ID, optional=True),
        }
    ),
    authorize_provider,
    _submit,
    "submit a claim (to a secondary payer citing the primary's; or replacing an unpaid"
    " one); adjudicated at commit, the result is the explanation of benefits",
)
CLAIM_SETTLE = TxType(
    "claim.settle",
    Obj(
        {
            "provider": MEMBER,
            "claim_id": Str(pattern=ID),
            "payment_ref": Str(pattern=ID),
            "amount": Int(min=1, max=MAX_AMOUNT * 1000),
        }
    ),
    authorize_insurer,
    _settle,
    "record a payment of an approved claim (at most what is outstanding)",
)
CLAIM_REVERSE = TxType(
    "claim.reverse",
    Obj(
        {
            "provider": MEMBER,
            "claim_id": Str(pattern=ID),
            "payment_ref": Str(pattern=ID, optional=True),
            "reason": Str(pattern=REASON),
        }
    ),
    authorize_insurer,
    _reverse,
    "reverse a settlement (with payment_ref) or a whole unpaid claim",
)

DOMAIN = Domain(
    name="claims",
    tx_types=(
        POLICY_PUBLISH,
        COVERAGE_ENROLL,
        PREAUTH_REQUEST,
        PREAUTH_DECIDE,
        CLAIM_SUBMIT,
        CLAIM_SETTLE,
        CLAIM_REVERSE,
        claims_void.CLAIM_VOID,
    ),
    queries=(
        Query(
            "/claims/{provider}/{claim_id}", _q_claim, "A claim: status and explanation of benefits"
        ),
        Query(
            "/claims-statements/providers/{member}",
            _q_provider_statement,
            "A provider's settlement statement: per insurer approved, paid, outstanding",
            ("limit",),
        ),
        Query(
            "/claims-statements/insurers/{member}",
            _q_insurer_statement,
            "An insurer's settlement statement: per provider approved, paid, outstanding",
            ("limit",),
        ),
        Query("/policies/{policy_id}", _q_policy, "An insurance policy and all its versions"),
        Query(
            "/coverage/{insurer}/{patient}",
            _q_coverage,
            "A patient key's coverages at an insurer",
            scope=PatientScope("patient", "the insurer", named=lambda _s, p: (p["insurer"],)),
        ),
        Query(
            "/preauths/{provider}/{preauth_id}", _q_preauth, "A pre-authorisation and its decision"
        ),
    ),
)
