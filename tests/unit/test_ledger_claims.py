"""Claims domain: policies, coverage, pre-authorisation, adjudication, fraud checks, settlement."""

from __future__ import annotations

import datetime
import hashlib
from typing import Any

import pytest

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.domains import claims, ehr, supply
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "test-chain"
T0 = 1_740_787_200_000  # 2025-03-01T00:00:00Z
KEYS = {
    name: key_from_seed(bytes([i + 1]) * 32)
    for i, name in enumerate(["h1", "c1", "p1", "i1", "i2", "m1", "outsider", "i3"])
}
ROLES = {
    "h1": "hospital",
    "c1": "clinic",
    "p1": "pharmacy",
    "i1": "insurer",
    "i2": "insurer",
    "m1": "manufacturer",
    "i3": "insurer",
}
MEMBERS = [
    {"id": mid, "name": mid, "roles": [role], "keys": [public_key_hex(KEYS[mid])]}
    for mid, role in ROLES.items()
]
PATIENT = hashlib.sha256(b"patient-1").hexdigest()
PATIENT2 = hashlib.sha256(b"patient-2").hexdigest()
GTIN = "09506000134352"

_nonce = iter(range(1, 1 << 30))


class Chain:
    """Blocks on a MemoryChainStore, one second apart from 2025-03-01 (UTC), or from
    the day ``jump`` moved the clock to."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.ledger = Ledger()
        self.height = 0
        self.root = b"\0" * 32
        self.base = T0

    def jump(self, date: str) -> None:
        """The next blocks are on ``date`` (UTC), one second apart: claims may then be
        for services up to that day (a later one is in the future, CARC 110)."""
        day = datetime.datetime.fromisoformat(date).replace(tzinfo=datetime.UTC)
        self.base = int(day.timestamp()) * 1000 - 1000 * self.height
        assert self.base >= T0

    def run(self, *txs: Tx) -> list[TxResult]:
        self.height += 1
        block = BlockInfo(CHAIN, self.height, self.base + 1000 * self.height, 0)
        out = execute_and_commit(self.store, self.ledger, block, txs, self.root, MEMBERS)
        self.root = out.state_root
        return out.results

    def ok(self, tx: Tx) -> dict[str, Any]:
        (res,) = self.run(tx)
        assert res.status == "ok", (res.code, res.message)
        return res.data

    def code(self, tx: Tx) -> str:
        (res,) = self.run(tx)
        return res.code

    def state(self) -> BlockState:
        return BlockState(self.store)


def tx(signer: str, tx_type: str, body: dict[str, Any]) -> Tx:
    return build_tx(CHAIN, tx_type, body, KEYS[signer], next(_nonce))


def policy(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policy_id": "gold",
        "currency": "EUR",
        "services": [
            {"code": "99213", "allowed": 10_000},
            {"code": "70450", "allowed": 50_000},
            {"code": "J1100", "allowed": 2_000},
        ],
        "copay_bp": 2_000,
        "copay_fixed": 1_000,
        "deductible": 0,
        "preauth_codes": ["70450"],
    }
    body.update(over)
    return body


def enroll(patient: str = PATIENT, **over: Any) -> dict[str, Any]:
    body = {
        "coverage_id": "cov-1",
        "patient": patient,
        "policy_id": "gold",
        "start": "2025-01-01",
        "end": "2025-12-31",
    }
    body.update(over)
    return body


def item(
    code: str = "99213", qty: int = 1, price: int = 10_000, date: str = "2025-03-01", **extra: Any
) -> dict[str, Any]:
    return {
        "service_code": code,
        "quantity": qty,
        "unit_price": price,
        "service_date": date,
        **extra,
    }


def claim(
    claim_id: str = "c-1",
    items: list[dict[str, Any]] | None = None,
    insurer: str = "i1",
    patient: str = PATIENT,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "claim_id": claim_id,
        "patient": patient,
        "insurer": insurer,
        "items": items or [item()],
        "diagnosis": ["J20.9"],
        **extra,
    }


def setup(**policy_over: Any) -> Chain:
    chain = Chain()
    chain.run()  # block 1: genesis members
    chain.ok(tx("i1", "policy.publish", policy(**policy_over)))
    chain.ok(tx("i1", "coverage.enroll", enroll()))
    return chain


def submit(chain: Chain, body: dict[str, Any], signer: str = "h1") -> dict[str, Any]:
    """Submit a claim that must commit; return its full explanation of benefits (the
    claim query), after checking the result data is the compact form of it."""
    data = chain.ok(tx(signer, "claim.submit", body))
    view = claims._claim_view(chain.state(), signer, body["claim_id"])
    assert view is not None
    assert (data["decision"], data["totals"], data["flags"]) == (
        view["decision"],
        view["totals"],
        view["flags"],
    )
    assert [(i["benefit"], i["adjustments"]) for i in data["items"]] == [
        (i["benefit"], i["adjustments"]) for i in view["items"]
    ]
    return view


def amounts(it: dict[str, Any]) -> tuple[int, ...]:
    return (
        it["submitted"],
        it["eligible"],
        it["deductible"],
        it["copay"],
        it["coinsurance"],
        it["benefit"],
    )


def reasons(it: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(a["group"], a["code"], a["amount"]) for a in it["adjustments"]]


# ------------------------------------------------------------ every type: valid, unauthorised,
# malformed, replay


def _valid_txs() -> list[tuple[str, str, dict[str, Any]]]:
    """One valid transaction of every type, in an order in which each is valid."""
    return [
        ("i1", "policy.publish", policy(policy_id="silver")),
        ("i1", "coverage.enroll", enroll(PATIENT2, policy_id="silver", coverage_id="cov-s")),
        (
            "h1",
            "preauth.request",
            {
                "preauth_id": "pa-1",
                "patient": PATIENT2,
                "insurer": "i1",
                "service_codes": ["70450"],
            },
        ),
        ("i1", "preauth.decide", {"provider": "h1", "preauth_id": "pa-1", "decision": "approved"}),
        ("h1", "claim.submit", claim("c-9", patient=PATIENT2)),
        (
            "i1",
            "claim.settle",
            {"provider": "h1", "claim_id": "c-9", "payment_ref": "pay-9", "amount": 100},
        ),
        (
            "i1",
            "claim.reverse",
            {
                "provider": "h1",
                "claim_id": "c-9",
                "payment_ref": "pay-9",
                "reason": "paid in error",
            },
        ),
        ("h1", "claim.void", {"provider": "h1", "claim_id": "c-9", "reason": "billed in error"}),
    ]


def test_every_type_valid_then_replayed() -> None:
    """Each type's valid transaction commits ok; the same transaction again is a replay."""
    chain = setup()
    for signer, tx_type, body in _valid_txs():
        t = tx(signer, tx_type, body)
        assert chain.code(t) == "ok", tx_type
        assert chain.code(t) == "replay", tx_type


@pytest.mark.parametrize("index", range(8))
def test_every_type_unauthorised_signer_is_rejected(index: int) -> None:
    """A member without the right role (or no member at all) is refused as unauthorized."""
    chain = setup()
    for signer, tx_type, body in _valid_txs()[:index]:
        chain.ok(tx(signer, tx_type, body))
    signer, tx_type, body = _valid_txs()[index]
    wrong = "m1" if signer == "i1" else "i2"
    assert chain.code(tx(wrong, tx_type, body)) == "unauthorized"
    assert chain.code(tx("outsider", tx_type, body)) == "unauthorized"


MALFORMED = [
    ("policy.publish", policy(copay_bp=10_001), "body.copay_bp"),
    ("policy.publish", policy(services=[]), "body.services"),
    ("policy.publish", policy(currency="euro"), "body.currency"),
    ("policy.publish", {**policy(), "patient_name": "Jane"}, "body.patient_name"),
    ("coverage.enroll", enroll(start="2025-02-30"), "body.start"),
    ("coverage.enroll", enroll(patient="PATIENT"), "body.patient"),
    (
        "preauth.request",
        {"preauth_id": "pa", "patient": PATIENT, "insurer": "i1", "service_codes": []},
        "body.service_codes",
    ),
    (
        "preauth.decide",
        {"provider": "h1", "preauth_id": "pa", "decision": "maybe"},
        "body.decision",
    ),
    ("claim.submit", claim(items=[item(qty=0)]), "body.items[0].quantity"),
    ("claim.submit", claim(items=[item(price=-1)]), "body.items[0].unit_price"),
    ("claim.submit", claim(items=[item(date="01/03/2025")]), "body.items[0].service_date"),
    ("claim.submit", {**claim(), "diagnosis": ["bronchitis"]}, "body.diagnosis[0]"),
    ("claim.submit", {**claim(), "note": "x"}, "body.note"),
    ("claim.submit", claim(primary_claim="a/b"), "body.primary_claim"),
    ("claim.submit", claim(replaces=""), "body.replaces"),
    ("claim.void", {"provider": "h1", "claim_id": "c"}, "body.reason"),
    ("claim.void", {"provider": "h1", "claim_id": "c", "reason": "x", "amount": 1}, "body.amount"),
    (
        "claim.settle",
        {"provider": "h1", "claim_id": "c", "payment_ref": "p", "amount": 0},
        "body.amount",
    ),
    ("claim.reverse", {"provider": "h1", "claim_id": "c"}, "body.reason"),
]


@pytest.mark.parametrize(("tx_type", "body", "where"), MALFORMED)
def test_every_type_malformed_body_is_refused_with_its_path(
    tx_type: str, body: dict[str, Any], where: str
) -> None:
    """Schema errors (ranges, dates, ICD-like codes, unknown fields) name the field."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("i1", tx_type, body))
    assert err.value.code == "malformed" and where in err.value.message


def test_gtin_without_serial_is_malformed_at_commit() -> None:
    """A drug item needs both GTIN and serial."""
    chain = setup()
    assert chain.code(tx("h1", "claim.submit", claim(items=[item(gtin=GTIN)]))) == "malformed"


# ------------------------------------------------------------ policies and coverage


def test_policy_versions_and_version_in_force_at_service_date() -> None:
    """A second publish is version 2; a line uses the version in force at its service date."""
    chain = setup()
    data = chain.ok(
        tx(
            "i1",
            "policy.publish",
            policy(
                effective="2025-06-01",
                services=[{"code": "99213", "allowed": 20_000}],
                copay_bp=0,
                copay_fixed=0,
                preauth_codes=[],
            ),
        )
    )
    assert data == {"policy_id": "gold", "version": 2, "effective": "2025-06-01"}
    chain.jump("2025-07-01")
    out = submit(
        chain,
        claim(items=[item(price=30_000, date="2025-04-01"), item(price=30_000, date="2025-07-01")]),
    )
    v1, v2 = out["items"]
    assert (v1["policy_version"], v1["eligible"], v1["benefit"]) == (1, 10_000, 7_200)
    assert (v2["policy_version"], v2["eligible"], v2["benefit"]) == (2, 20_000, 20_000)
    q = claims._q_policy(chain.state(), {"policy_id": "gold"}, {})
    assert q is not None and q["latest"] == 2 and [v["version"] for v in q["versions"]] == [1, 2]


@pytest.mark.parametrize(
    ("over", "code"),
    [
        (
            {"services": [{"code": "A", "allowed": 1}, {"code": "A", "allowed": 2}]},
            "invalid-policy",
        ),
        ({"preauth_codes": ["99999"]}, "invalid-policy"),
        ({"effective": "2025-02-28"}, "invalid-policy"),
    ],
)
def test_policy_is_validated_when_published(over: dict[str, Any], code: str) -> None:
    """Repeated service codes, pre-auth codes not covered and back-dated versions are refused."""
    chain = Chain()
    chain.run()
    assert chain.code(tx("i1", "policy.publish", policy(**over))) == code


def test_policy_of_another_insurer_and_version_before_previous_are_refused() -> None:
    """Only the first publisher versions a policy id; versions' effective dates never go back."""
    chain = setup()
    assert chain.code(tx("i2", "policy.publish", policy())) == "not-owner"
    chain.ok(tx("i1", "policy.publish", policy(effective="2025-09-01")))
    assert chain.code(tx("i1", "policy.publish", policy(effective="2025-08-01"))) == (
        "invalid-policy"
    )


def test_enroll_rules() -> None:
    """Enrolment needs the insurer's own existing policy, a sane period and a new coverage id."""
    chain = setup()
    assert chain.code(tx("i1", "coverage.enroll", enroll(policy_id="nope"))) == "unknown-policy"
    assert chain.code(tx("i2", "coverage.enroll", enroll())) == "not-owner"
    assert (
        chain.code(tx("i1", "coverage.enroll", enroll(coverage_id="x", start="2026-01-01")))
        == "invalid-period"
    )
    assert chain.code(tx("i1", "coverage.enroll", enroll())) == "coverage-exists"
    cov = claims._q_coverage(chain.state(), {"insurer": "i1", "patient": PATIENT}, {})
    assert cov is not None and [c["coverage_id"] for c in cov["coverages"]] == ["cov-1"]


# ------------------------------------------------------------ adjudication arithmetic


def test_copay_percent_and_fixed_and_fee_schedule() -> None:
    """2 x 12,000 against 10,000 allowed: 4,000 over the fee schedule (CARC 45), 1,000 fixed
    copay (3), 20 % of 19,000 = 3,800 coinsurance (2), benefit 15,200; amounts add up."""
    chain = setup()
    out = submit(chain, claim(items=[item(qty=2, price=12_000)]))
    (it,) = out["items"]
    assert amounts(it) == (24_000, 20_000, 0, 1_000, 3_800, 15_200)
    assert reasons(it) == [("CO", "45", 4_000), ("PR", "3", 1_000), ("PR", "2", 3_800)]
    assert it["patient_responsibility"] == 4_800
    assert it["submitted"] == it["benefit"] + sum(a for _, _, a in reasons(it))
    assert out["decision"] == "approved" and out["totals"]["benefit"] == 15_200


def test_coinsurance_rounds_down() -> None:
    """Coinsurance is floor(rest * bp / 10000): 33.33 % of 1,000 is 333, benefit 667."""
    chain = setup(copay_bp=3_333, copay_fixed=0)
    (it,) = submit(chain, claim(items=[item(price=1_000)]))["items"]
    assert (it["coinsurance"], it["benefit"]) == (333, 667)


def test_deductible_across_two_claims() -> None:
    """A 15,000 deductible takes all of a first 10,000 claim and 5,000 of the second."""
    chain = setup(deductible=15_000, copay_bp=0, copay_fixed=0)
    chain.jump("2025-03-02")
    (a,) = submit(chain, claim("c-1", [item(date="2025-03-01")]))["items"]
    (b,) = submit(chain, claim("c-2", [item(date="2025-03-02")]))["items"]
    assert amounts(a) == (10_000, 10_000, 10_000, 0, 0, 0)
    assert a["decision"] == "approved" and reasons(a) == [("PR", "1", 10_000)]
    assert amounts(b) == (10_000, 10_000, 5_000, 0, 0, 5_000)


def test_deductible_then_copays_within_one_claim() -> None:
    """Deductible first (3,000), then fixed copay 1,000, then 20 % of 6,000 = 1,200: 4,800."""
    chain = setup(deductible=3_000)
    (it,) = submit(chain, claim(items=[item()]))["items"]
    assert amounts(it) == (10_000, 10_000, 3_000, 1_000, 1_200, 4_800)


def test_annual_limit() -> None:
    """A 12,000 limit pays 10,000, then 2,000 (8,000 CARC 119), then nothing: denied."""
    chain = setup(copay_bp=0, copay_fixed=0, annual_limit=12_000)
    chain.jump("2025-03-03")
    (a,) = submit(chain, claim("c-1", [item(date="2025-03-01")]))["items"]
    out = submit(chain, claim("c-2", [item(date="2025-03-02")]))
    (c,) = submit(chain, claim("c-3", [item(date="2025-03-03")]))["items"]
    assert a["benefit"] == 10_000
    assert out["items"][0]["benefit"] == 2_000
    assert reasons(out["items"][0]) == [("PR", "119", 8_000)] and out["decision"] == "approved"
    assert (c["benefit"], c["decision"]) == (0, "denied")


def test_non_covered_code_makes_a_partial_claim() -> None:
    """A code the policy does not list is denied (CARC 96); with a paid line: partial."""
    chain = setup(copay_bp=0, copay_fixed=0)
    out = submit(chain, claim(items=[item(), item("99999", price=5_000)]))
    assert out["decision"] == "partial"
    assert reasons(out["items"][1]) == [("CO", "96", 5_000)]
    assert out["totals"]["benefit"] == 10_000


def test_preauth_missing_denied_and_approved() -> None:
    """A pre-auth code without an approved pre-authorisation is denied (197); with one, paid."""
    chain = setup(copay_bp=0, copay_fixed=0)
    ct = item("70450", price=50_000)
    out = submit(chain, claim("c-1", [ct]))
    assert out["decision"] == "denied" and reasons(out["items"][0]) == [("CO", "197", 50_000)]
    chain.ok(
        tx(
            "h1",
            "preauth.request",
            {"preauth_id": "pa-1", "patient": PATIENT, "insurer": "i1", "service_codes": ["70450"]},
        )
    )
    chain.jump("2025-04-03")
    out = submit(chain, claim("c-2", [{**ct, "service_date": "2025-03-02"}], preauth="pa-1"))
    assert reasons(out["items"][0]) == [("CO", "197", 50_000)]  # requested, not yet approved
    chain.ok(
        tx(
            "i1",
            "preauth.decide",
            {
                "provider": "h1",
                "preauth_id": "pa-1",
                "decision": "approved",
                "expires": "2025-03-31",
            },
        )
    )
    out = submit(chain, claim("c-3", [{**ct, "service_date": "2025-03-03"}], preauth="pa-1"))
    assert out["decision"] == "approved" and out["items"][0]["benefit"] == 50_000
    out = submit(chain, claim("c-4", [{**ct, "service_date": "2025-04-03"}], preauth="pa-1"))
    assert reasons(out["items"][0]) == [("CO", "197", 50_000)]  # after it expired
    out = submit(chain, claim("c-5", [ct], patient=PATIENT2, preauth="pa-1"))
    assert out["items"][0]["adjustments"][0]["code"] == "31"  # not insured at all


def test_preauth_decide_rules() -> None:
    """Only the addressed insurer decides, once; a denial has no expiry."""
    chain = setup()
    chain.ok(
        tx(
            "h1",
            "preauth.request",
            {"preauth_id": "pa-1", "patient": PATIENT, "insurer": "i1", "service_codes": ["70450"]},
        )
    )
    body = {"provider": "h1", "preauth_id": "pa-1", "decision": "denied"}
    assert chain.code(tx("i2", "preauth.decide", body)) == "not-owner"
    assert chain.code(tx("i1", "preauth.decide", {**body, "expires": "2025-05-01"})) == (
        "malformed"
    )
    chain.ok(tx("i1", "preauth.decide", body))
    assert chain.code(tx("i1", "preauth.decide", {**body, "decision": "approved"})) == (
        "already-decided"
    )
    assert chain.code(tx("i1", "preauth.decide", {**body, "preauth_id": "x"})) == (
        "unknown-preauth"
    )
    assert (
        chain.code(
            tx(
                "h1",
                "preauth.request",
                {"preauth_id": "pa-2", "patient": PATIENT, "insurer": "h1", "service_codes": ["1"]},
            )
        )
        == "unknown-insurer"
    )


def test_coverage_period_and_no_coverage() -> None:
    """Before the period: CARC 26; after: 27; a patient not enrolled: 31."""
    chain = setup()
    chain.jump("2026-01-01")
    out = submit(chain, claim(items=[item(date="2024-12-31"), item(date="2026-01-01")]))
    assert [i["adjustments"][0]["code"] for i in out["items"]] == ["26", "27"]
    assert out["decision"] == "denied"
    out = submit(chain, claim("c-2", patient=PATIENT2))
    assert out["items"][0]["adjustments"][0]["code"] == "31"


def test_claim_rules() -> None:
    """A claim id is unique per provider; the insurer must be an active insurer."""
    chain = setup()
    submit(chain, claim())
    assert chain.code(tx("h1", "claim.submit", claim(items=[item(date="2025-03-05")]))) == (
        "claim-exists"
    )
    assert chain.code(tx("h1", "claim.submit", claim("c-2", insurer="m1"))) == "unknown-insurer"


# ------------------------------------------------------------ fraud: duplicates


def test_duplicate_at_the_same_insurer_is_flagged_and_denied() -> None:
    """Same patient, provider, code and date again: CARC 18, flagged with the original."""
    chain = setup()
    submit(chain, claim("c-1"))
    out = submit(chain, claim("c-2"))
    assert out["decision"] == "denied" and reasons(out["items"][0])[0][:2] == ("OA", "18")
    (flag,) = out["flags"]
    assert flag["code"] == "duplicate" and flag["original"]["claim_id"] == "c-1"
    assert flag["cross_insurer"] is False


def test_duplicate_at_another_insurer_is_flagged() -> None:
    """The index is global: the same service claimed at a second insurer is flagged too."""
    chain = setup()
    chain.ok(tx("i2", "policy.publish", policy(policy_id="other")))
    chain.ok(tx("i2", "coverage.enroll", enroll(policy_id="other")))
    submit(chain, claim("c-1"))
    out = submit(chain, claim("c-2", insurer="i2"))
    (flag,) = out["flags"]
    assert flag["code"] == "duplicate" and flag["cross_insurer"] is True
    assert flag["original"]["insurer"] == "i1"


def test_duplicate_within_one_claim_is_flagged() -> None:
    """Two lines of one claim for the same code and date: the second is the duplicate."""
    chain = setup()
    out = submit(chain, claim(items=[item(), item()]))
    assert [i["decision"] for i in out["items"]] == ["approved", "denied"]
    assert out["flags"][0]["original"]["item"] == 1 and out["decision"] == "partial"


def test_not_duplicates() -> None:
    """Another date, another code, another provider or another patient is no duplicate."""
    chain = setup()
    chain.ok(tx("i1", "coverage.enroll", enroll(PATIENT2, coverage_id="cov-2")))
    chain.jump("2025-03-02")
    submit(chain, claim("c-1"))
    for cid, body, signer in [
        ("c-2", claim("c-2", [item(date="2025-03-02")]), "h1"),
        ("c-3", claim("c-3", [item("J1100", price=2_000)]), "h1"),
        ("c-4", claim("c-4"), "c1"),
        ("c-5", claim("c-5", patient=PATIENT2), "h1"),
    ]:
        out = submit(chain, body, signer)
        assert out["flags"] == [] and out["decision"] == "approved", cid


def test_a_reversed_claim_can_be_submitted_again() -> None:
    """Reversing a claim frees its lines from the duplicate index."""
    chain = setup()
    submit(chain, claim("c-1"))
    chain.ok(
        tx(
            "i1",
            "claim.reverse",
            {"provider": "h1", "claim_id": "c-1", "reason": "submitted in error"},
        )
    )
    out = submit(chain, claim("c-2"))
    assert out["flags"] == [] and out["decision"] == "approved"


# ------------------------------------------------------------ fraud: evidence and drugs (fakes)

RECORDS: dict[str, dict[str, Any]] = {
    "rec-ok": {"record_id": "rec-ok", "patient": PATIENT, "custodian": "h1"},
    "rec-other-patient": {"record_id": "rec-other-patient", "patient": PATIENT2, "custodian": "h1"},
    "rec-other-custodian": {
        "record_id": "rec-other-custodian",
        "patient": PATIENT,
        "custodian": "c1",
    },
}


@pytest.fixture
def fake_ehr(monkeypatch: pytest.MonkeyPatch) -> None:
    def record_info(state: BlockState, record_id: str) -> dict[str, Any] | None:
        return RECORDS.get(record_id)

    monkeypatch.setattr(ehr, "record_info", record_info, raising=False)


@pytest.mark.usefixtures("fake_ehr")
def test_evidence_of_that_patient_by_that_provider_passes() -> None:
    """An anchored record of the patient by the claiming provider raises no flag."""
    chain = setup(evidence_required=True)
    out = submit(chain, claim(evidence=["rec-ok"]))
    assert out["flags"] == [] and out["decision"] == "approved"


@pytest.mark.usefixtures("fake_ehr")
@pytest.mark.parametrize(
    ("record_id", "why"),
    [
        ("rec-other-patient", "other-patient"),
        ("rec-other-custodian", "other-custodian"),
        ("rec-missing", "not-anchored"),
    ],
)
def test_evidence_not_of_that_patient_by_that_provider_is_flagged(record_id: str, why: str) -> None:
    """Evidence of another patient, another custodian, or no record: flagged, claim denied."""
    chain = setup()
    out = submit(chain, claim(evidence=["rec-ok", record_id]))
    assert out["flags"] == [{"code": "evidence-mismatch", "record_id": record_id, "why": why}]
    assert out["decision"] == "denied" and reasons(out["items"][0])[0][1] == "16"


def test_evidence_required_but_absent_is_denied_without_a_flag() -> None:
    """A policy requiring evidence denies a claim without any (CARC 252); not fraud."""
    chain = setup(evidence_required=True)
    out = submit(chain, claim())
    assert out["flags"] == [] and reasons(out["items"][0])[0][1] == "252"


SERIALS: dict[str, dict[str, Any]] = {
    "S1": {"gtin": GTIN, "serial": "S1", "dispensed_by": "p1"},
    "S2": {"gtin": GTIN, "serial": "S2", "dispensed_by": "h1"},
    "S3": {"gtin": GTIN, "serial": "S3", "dispensed_by": None},
}


@pytest.fixture
def fake_supply(monkeypatch: pytest.MonkeyPatch) -> None:
    def serial_info(state: BlockState, gtin: str, serial: str) -> dict[str, Any] | None:
        return SERIALS.get(serial) if gtin == GTIN else None

    monkeypatch.setattr(supply, "serial_info", serial_info, raising=False)


@pytest.mark.usefixtures("fake_supply")
def test_drug_dispensed_by_the_provider_passes() -> None:
    """A drug line whose serial the claiming pharmacy dispensed is paid."""
    chain = setup(copay_bp=0, copay_fixed=0)
    out = submit(chain, claim(items=[item("J1100", price=2_000, gtin=GTIN, serial="S1")]), "p1")
    assert out["flags"] == [] and out["totals"]["benefit"] == 2_000


@pytest.mark.usefixtures("fake_supply")
@pytest.mark.parametrize(
    ("serial", "why"),
    [
        ("S2", "not-dispensed-by-provider"),
        ("S3", "not-dispensed-by-provider"),
        ("S9", "unknown-serial"),
    ],
)
def test_drug_not_dispensed_by_the_provider_is_flagged(serial: str, why: str) -> None:
    """A serial dispensed by someone else, not dispensed, or unknown: flagged and denied."""
    chain = setup()
    out = submit(
        chain, claim(items=[item(), item("J1100", price=2_000, gtin=GTIN, serial=serial)]), "p1"
    )
    assert out["flags"] == [{"code": "drug-not-dispensed", "item": 2, "why": why}]
    assert out["decision"] == "partial" and reasons(out["items"][1])[0][1] == "16"


# ------------------------------------------------------------ fraud: the real EHR and supply


def test_real_ehr_record_is_valid_evidence_and_another_patients_is_not() -> None:
    """With node.ledger.domains.ehr's record.anchor: the provider's record of the patient passes,
    a record of another patient is flagged."""
    chain = setup()
    for patient, rid in ((PATIENT, "rec-a"), (PATIENT2, "rec-b")):
        chain.ok(tx("h1", "patient.enroll", {"patient": patient}))
        chain.ok(
            tx(
                "h1",
                "record.anchor",
                {
                    "record_id": rid,
                    "patient": patient,
                    "type": "DocumentReference",
                    "commitment": hashlib.sha256(rid.encode()).hexdigest(),
                    "version": 1,
                },
            )
        )
    chain.jump("2025-03-02")
    assert submit(chain, claim("c-1", evidence=["rec-a"]))["flags"] == []
    flags = submit(chain, claim("c-2", [item(date="2025-03-02")], evidence=["rec-b"]))["flags"]
    assert [(f["code"], f["why"]) for f in flags] == [("evidence-mismatch", "other-patient")]


def test_real_supply_dispense_is_claimable_only_by_the_dispenser() -> None:
    """With the supply domain: the pharmacy that dispensed a pack may claim it; the hospital
    claiming the same serial is flagged."""
    chain = setup(copay_bp=0, copay_fixed=0)
    packs = {"gtin": GTIN, "serials": ["SN1"]}
    chain.ok(tx("m1", "drug.commission", {**packs, "lot": "L1", "expiry": "271231"}))
    chain.ok(tx("m1", "drug.ship", {**packs, "to": "p1"}))
    chain.ok(tx("p1", "drug.receive", packs))
    chain.ok(tx("p1", "drug.dispense", packs))
    drug = item("J1100", price=2_000, gtin=GTIN, serial="SN1")
    assert submit(chain, claim("c-1", [drug]), "p1")["flags"] == []
    flags = submit(chain, claim("c-2", [drug]), "h1")["flags"]
    assert [f["code"] for f in flags] == ["drug-not-dispensed"]


# ------------------------------------------------------------ settlement


def test_settle_reverse_and_statements() -> None:
    """Settlements pay down what is outstanding; a reversed payment reopens it; statements
    per provider-insurer pair show approved, paid, outstanding."""
    chain = setup(copay_bp=0, copay_fixed=0)
    submit(chain, claim("c-1"))
    settle = {"provider": "h1", "claim_id": "c-1", "payment_ref": "pay-1", "amount": 6_000}
    assert chain.ok(tx("i1", "claim.settle", settle)) == {
        "claim_id": "c-1",
        "paid": 6_000,
        "outstanding": 4_000,
    }
    assert chain.code(tx("i1", "claim.settle", {**settle, "payment_ref": "pay-2"})) == (
        "over-settlement"
    )
    assert chain.code(tx("i1", "claim.settle", {**settle, "amount": 1})) == "payment-exists"
    assert chain.code(tx("i2", "claim.settle", {**settle, "payment_ref": "x"})) == "not-owner"
    assert chain.code(tx("i1", "claim.settle", {**settle, "claim_id": "nope"})) == ("unknown-claim")
    rev = {"provider": "h1", "claim_id": "c-1", "reason": "wrong"}
    assert chain.code(tx("i1", "claim.reverse", rev)) == "claim-paid"
    chain.ok(tx("i1", "claim.settle", {**settle, "payment_ref": "pay-2", "amount": 4_000}))
    st = claims._q_provider_statement(chain.state(), {"member": "h1"}, {})
    assert st["pairs"] == [
        {
            "provider": "h1",
            "insurer": "i1",
            "approved": 10_000,
            "paid": 10_000,
            "outstanding": 0,
            "claims": 1,
        }
    ]
    chain.ok(tx("i1", "claim.reverse", {**rev, "payment_ref": "pay-2"}))
    assert chain.code(tx("i1", "claim.reverse", {**rev, "payment_ref": "pay-2"})) == (
        "already-reversed"
    )
    assert chain.code(tx("i1", "claim.reverse", {**rev, "payment_ref": "zzz"})) == (
        "unknown-payment"
    )
    st = claims._q_insurer_statement(chain.state(), {"member": "i1"}, {})
    assert st["totals"] == {"approved": 10_000, "paid": 6_000, "outstanding": 4_000, "claims": 1}
    assert st["claims"][0]["paid"] == 6_000
    status = claims._q_claim(chain.state(), {"provider": "h1", "claim_id": "c-1"}, {})
    assert status is not None and status["outstanding"] == 4_000
    assert [p["status"] for p in status["payments"]] == ["paid", "reversed"]


def test_claim_reversal_restores_accumulators_and_ledger() -> None:
    """Reversing an unpaid claim gives back its deductible and removes it from 'approved'."""
    chain = setup(deductible=5_000, copay_bp=0, copay_fixed=0)
    submit(chain, claim("c-1"))
    rev = {"provider": "h1", "claim_id": "c-1", "reason": "wrong patient"}
    chain.ok(tx("i1", "claim.reverse", rev))
    assert chain.code(tx("i1", "claim.reverse", rev)) == "already-reversed"
    assert chain.code(
        tx(
            "i1",
            "claim.settle",
            {"provider": "h1", "claim_id": "c-1", "payment_ref": "p", "amount": 1},
        )
    ) == ("claim-reversed")
    (it,) = submit(chain, claim("c-2"))["items"]
    assert (it["deductible"], it["benefit"]) == (5_000, 5_000)
    st = claims._q_provider_statement(chain.state(), {"member": "h1"}, {})
    assert st["totals"]["approved"] == 5_000
    status = claims._q_claim(chain.state(), {"provider": "h1", "claim_id": "c-1"}, {})
    assert status is not None and status["status"] == "reversed" and status["outstanding"] == 0


# ------------------------------------------------------------ queries and determinism


def test_queries_refuse_bad_parameters_and_miss_with_none() -> None:
    """Path parameters are checked (400) and unknown things are None (404)."""
    state = setup().state()
    with pytest.raises(Rejection):
        claims._q_claim(state, {"provider": "h1", "claim_id": "a/b"}, {})
    with pytest.raises(Rejection):
        claims._q_provider_statement(state, {"member": "h1"}, {"limit": "0"})
    with pytest.raises(Rejection):
        claims._q_coverage(state, {"insurer": "i1", "patient": "x"}, {})
    assert claims._q_claim(state, {"provider": "h1", "claim_id": "none"}, {}) is None
    assert claims._q_policy(state, {"policy_id": "none"}, {}) is None
    assert claims._q_preauth(state, {"provider": "h1", "preauth_id": "none"}, {}) is None


def test_adjudication_is_deterministic() -> None:
    """Two nodes executing the same claim blocks reach the same state root."""
    blocks = [
        [],
        [tx("i1", "policy.publish", policy(deductible=3_000, annual_limit=20_000))],
        [tx("i1", "coverage.enroll", enroll())],
        [tx("h1", "claim.submit", claim("c-1", [item(qty=3, price=9_999), item("99999")]))],
    ]
    roots = []
    for _ in range(2):
        chain = Chain()
        for block in blocks:
            chain.run(*block)
        roots.append(chain.root)
    assert roots[0] == roots[1]


@pytest.mark.usefixtures("fake_ehr", "fake_supply")
def test_the_first_denial_that_applies_decides_a_line() -> None:
    """The order of the per-line ladder (claims._adjudicate_line): a future service date
    before anything (no flag), a duplicate before an undispensed drug pack (only the
    duplicate is flagged), a drug pack or flagged evidence before the coverage period,
    the coverage period before an uncovered code, an uncovered code before a missing
    pre-authorisation."""
    chain = setup()
    chain.jump("2026-01-01")
    unknown = item("J1100", price=2_000, gtin=GTIN, serial="S9")
    first = submit(chain, claim("c-1", [unknown]), "p1")
    assert [f["code"] for f in first["flags"]] == ["drug-not-dispensed"]
    out = submit(
        chain,
        claim(
            "c-2",
            [
                unknown,  # a duplicate of c-1's line, of an unknown pack
                {**unknown, "serial": "S8", "service_date": "2025-03-02"},
                item(date="2026-01-01"),  # after the coverage period
                {**unknown, "service_date": "2026-01-02"},  # in the future, all of the above
            ],
            evidence=["rec-ok"],  # h1's record: another custodian for p1
        ),
        "p1",
    )
    assert [reasons(i)[0][:2] for i in out["items"]] == [
        ("OA", "18"),
        ("CO", "16"),
        ("CO", "16"),
        ("CO", "110"),
    ]
    assert [(f["code"], f.get("item")) for f in out["flags"]] == [
        ("evidence-mismatch", None),
        ("duplicate", 1),
        ("drug-not-dispensed", 2),
    ]
    out = submit(
        chain,
        claim(
            "c-3",
            [
                item("00000", date="2026-01-01"),  # not covered, and after the period
                item("00000", date="2025-03-03"),  # not covered
                item("70450", date="2025-03-03"),  # covered, needs a pre-authorisation
            ],
        ),
    )
    assert [reasons(i)[0][:2] for i in out["items"]] == [("CO", "27"), ("CO", "96"), ("CO", "197")]
    assert out["flags"] == [] and out["decision"] == "denied"
