"""Health records domain: patient.enroll, record.anchor, consent.*, access.* and the queries."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.domains import ehr
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit, run_query

CHAIN = "test-chain"
HOSP_A = key_from_seed(b"\x01" * 32)
HOSP_B = key_from_seed(b"\x02" * 32)
INSURER = key_from_seed(b"\x03" * 32)
OUTSIDER = key_from_seed(b"\x04" * 32)
PATIENT = key_from_seed(b"\x05" * 32)
OTHER_PATIENT = key_from_seed(b"\x06" * 32)
P = public_key_hex(PATIENT)
P2 = public_key_hex(OTHER_PATIENT)
MEMBERS = [
    {"id": "hosp-a", "name": "Hospital A", "roles": ["hospital"], "keys": [public_key_hex(HOSP_A)]},
    {"id": "clinic-b", "name": "Clinic B", "roles": ["clinic"], "keys": [public_key_hex(HOSP_B)]},
    {"id": "ins-c", "name": "Insurer C", "roles": ["insurer"], "keys": [public_key_hex(INSURER)]},
]
T0 = 1_000_000  # block time of height 1, ms; each block is 1000 ms later
_nonce = itertools.count(1)


def commitment(i: int) -> str:
    return hashlib.sha256(b"salt" + str(i).encode()).hexdigest()


def tx(tx_type: str, body: dict[str, Any], key: Any) -> Tx:
    return build_tx(CHAIN, tx_type, body, key, next(_nonce))


class Chain:
    """A ledger over a memory store; ``block`` executes txs at the next height."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.ledger = Ledger()
        self.height = 0
        self.root = b"\0" * 32
        self.roots: list[bytes] = []

    def time(self, height: int | None = None) -> int:
        return T0 + 1000 * ((self.height + 1 if height is None else height) - 1)

    def block(self, *txs: Tx) -> list[TxResult]:
        self.height += 1
        block = BlockInfo(CHAIN, self.height, self.time(self.height), 0)
        out = execute_and_commit(self.store, self.ledger, block, txs, self.root, MEMBERS)
        self.root = out.state_root
        self.roots.append(out.state_root)
        return out.results

    def one(self, t: Tx) -> TxResult:
        return self.block(t)[0]

    def ok(self, t: Tx) -> dict[str, Any]:
        r = self.one(t)
        assert r.status == "ok", (r.code, r.message)
        return r.data

    def state(self) -> BlockState:
        return BlockState(self.store)

    def query(self, path: str, params: dict[str, str] | None = None, **kw: str) -> Any:
        return run_query(ehr.DOMAIN, self.state(), path, kw, params)


def enroll(key: str = P, by: Any = HOSP_A) -> Tx:
    return tx("patient.enroll", {"patient": key}, by)


def anchor(
    rid: str = "rec-1",
    i: int = 1,
    version: int = 1,
    replaces: str | None = None,
    patient: str = P,
    rtype: str = "DiagnosticReport",
    by: Any = HOSP_A,
) -> Tx:
    body: dict[str, Any] = {
        "record_id": rid,
        "patient": patient,
        "type": rtype,
        "commitment": commitment(i),
        "version": version,
    }
    if replaces is not None:
        body["replaces"] = replaces
    return tx("record.anchor", body, by)


def grant(
    grantee: str = "clinic-b",
    scope: str = "all",
    purpose: tuple[str, ...] = ("TREAT",),
    start: int = 0,
    end: int = 10**12,
    by: Any = PATIENT,
    klass: list[str] | None = None,
    **extra: Any,
) -> Tx:
    if klass is not None:
        extra["class"] = klass
    body = {
        "grantee": grantee,
        "scope": scope,
        "purpose": list(purpose),
        "period": {"start": start, "end": end},
        **extra,
    }
    return tx("consent.grant", body, by)


def access(consent_id: str, rid: str = "rec-1", purpose: str = "TREAT", by: Any = HOSP_B) -> Tx:
    return tx("access.log", {"record_id": rid, "purpose": purpose, "consent_id": consent_id}, by)


def emergency(rid: str = "rec-1", reason: str = "ETREAT", by: Any = HOSP_B) -> Tx:
    return tx(
        "access.emergency", {"record_id": rid, "reason": reason, "duration_ms": 3_600_000}, by
    )


@pytest.fixture
def chain() -> Chain:
    """Genesis members, patient P enrolled by hospital A, record rec-1 (v1) of P anchored."""
    c = Chain()
    c.ok(enroll())
    c.ok(anchor())
    return c


# ------------------------------------------------------------------ patient.enroll
def test_enroll_valid_and_patient_info(chain: Chain) -> None:
    """A hospital enrols a key; patient_info returns key, enrolled_by, height, time."""
    info = ehr.patient_info(chain.state(), P)
    assert info is not None
    assert (info["key"], info["enrolled_by"], info["height"], info["time"]) == (
        P,
        "hosp-a",
        1,
        T0,
    )
    assert chain.query("/ehr/patients/{key}", key=P) == info
    assert ehr.patient_info(chain.state(), P2) is None


def test_enroll_by_clinic_ok_by_insurer_or_outsider_unauthorized(chain: Chain) -> None:
    """Only hospitals and clinics enrol; an insurer or a non-member key is unauthorized."""
    assert chain.one(enroll(P2, by=INSURER)).code == "unauthorized"
    assert chain.one(enroll(P2, by=OUTSIDER)).code == "unauthorized"
    assert ehr.patient_info(chain.state(), P2) is None
    assert chain.one(enroll(P2, by=HOSP_B)).status == "ok"


def test_enroll_twice_and_member_key_are_rejected(chain: Chain) -> None:
    """A key is enrolled once; a member's signing key cannot become a patient key."""
    assert chain.one(enroll()).code == "already-enrolled"
    assert chain.one(enroll(public_key_hex(INSURER))).code == "key-is-member"


# ------------------------------------------------------------------ malformed bodies
@pytest.mark.parametrize(
    ("tx_type", "body", "where"),
    [
        ("patient.enroll", {"patient": "ABC"}, "body.patient"),
        ("patient.enroll", {"patient": P, "name": "Jane Doe"}, "body.name"),
        ("record.anchor", {"record_id": "r", "patient": P, "type": "X"}, "body.type"),
        (
            "record.anchor",
            {
                "record_id": "a/b",
                "patient": P,
                "type": "Observation",
                "commitment": P,
                "version": 1,
            },
            "body.record_id",
        ),
        (
            "record.anchor",
            {"record_id": "r", "patient": P, "type": "Observation", "commitment": P, "version": 0},
            "body.version",
        ),
        (
            "consent.grant",
            {
                "grantee": "x",
                "scope": "some",
                "purpose": ["TREAT"],
                "period": {"start": 0, "end": 1},
            },
            "body.scope",
        ),
        (
            "consent.grant",
            {"grantee": "x", "scope": "all", "purpose": ["SELL"], "period": {"start": 0, "end": 1}},
            "body.purpose[0]",
        ),
        (
            "consent.grant",
            {"grantee": "x", "scope": "all", "purpose": ["TREAT"], "period": {"start": 0}},
            "body.period.end",
        ),
        ("consent.revoke", {"consent_id": "nope"}, "body.consent_id"),
        ("access.log", {"record_id": "r", "purpose": "TREAT"}, "body.consent_id"),
        ("access.log", {"record_id": "r", "purpose": "treat", "consent_id": P}, "body.purpose"),
        ("access.emergency", {"record_id": "r", "reason": "ETREAT"}, "body.duration_ms"),
        (
            "access.emergency",
            {"record_id": "r", "reason": "ETREAT", "duration_ms": 73 * 3600 * 1000},
            "body.duration_ms",
        ),
        (
            "access.emergency",
            {"record_id": "r", "reason": "ETREAT", "duration_ms": 1, "note": "Jane had a fall"},
            "body.note",
        ),
    ],
)
def test_malformed_bodies_are_refused_with_their_path(
    tx_type: str, body: dict[str, Any], where: str
) -> None:
    """Every type refuses bad or unknown fields (no room for PHI) and names the field."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx(tx_type, body, HOSP_A))
    assert err.value.code == "malformed" and where in err.value.message


# ------------------------------------------------------------------ replay
def test_every_type_rejects_a_replay(chain: Chain) -> None:
    """The same signed transaction of each type is rejected as a replay in a later block."""
    t_enroll = enroll(P2)
    t_anchor = anchor("rec-r", 50)
    t_grant = grant()
    cid = t_grant.hash
    t_access = access(cid)
    t_emerg = emergency()
    t_revoke = tx("consent.revoke", {"consent_id": cid}, PATIENT)
    for t in (t_enroll, t_anchor, t_grant, t_access, t_emerg, t_revoke):
        assert chain.one(t).status == "ok"
        assert chain.one(t).code == "replay", t.type


# ------------------------------------------------------------------ record.anchor
def test_anchor_valid_record_info_history_and_verify(chain: Chain) -> None:
    """Versions chain by replaces; record_info is the latest; verify finds any version."""
    v1 = ehr.record_info(chain.state(), "rec-1")
    assert v1 is not None and v1["version"] == 1
    data = chain.ok(anchor(i=2, version=2, replaces=v1["version_id"]))
    info = ehr.record_info(chain.state(), "rec-1")
    assert info is not None
    for k, want in {
        "record_id": "rec-1",
        "patient": P,
        "custodian": "hosp-a",
        "type": "DiagnosticReport",
        "version": 2,
        "commitment": commitment(2),
        "height": 3,
        "time": chain.time(3),
        "replaces": v1["version_id"],
        "version_id": data["version_id"],
    }.items():
        assert info[k] == want, k
    hist = chain.query("/ehr/records/{record_id}/history", record_id="rec-1")
    assert [v["version"] for v in hist["versions"]] == [1, 2]
    found = chain.query("/ehr/commitments/{commitment}", commitment=commitment(1))
    assert (found["record_id"], found["version"], found["custodian"], found["latest"]) == (
        "rec-1",
        1,
        "hosp-a",
        False,
    )
    assert chain.query("/ehr/commitments/{commitment}", commitment=commitment(99)) is None
    assert ehr.record_info(chain.state(), "nope") is None


def test_version_query_names_record_custodian_commitment_and_erasure(chain: Chain) -> None:
    """/ehr/versions/{version_id} is version_of: any version by its anchor's hash, with
    the record's latest version number and its erasure (which covers every version)."""
    v1 = ehr.record_info(chain.state(), "rec-1")
    assert v1 is not None
    v2_id = chain.ok(anchor(i=2, version=2, replaces=v1["version_id"]))["version_id"]
    q = "/ehr/versions/{version_id}"
    first = chain.query(q, version_id=v1["version_id"])
    assert first == ehr.version_of(chain.state(), v1["version_id"])
    for k, want in {
        "version_id": v1["version_id"],
        "record_id": "rec-1",
        "custodian": "hosp-a",
        "patient": P,
        "commitment": commitment(1),
        "version": 1,
        "latest": 2,
        "erased": None,
    }.items():
        assert first[k] == want, k
    second = chain.query(q, version_id=v2_id)
    assert (second["version"], second["replaces"], second["commitment"]) == (
        2,
        v1["version_id"],
        commitment(2),
    )
    assert chain.query(q, version_id=commitment(99)) is None
    with pytest.raises(Rejection, match="version_id"):
        chain.query(q, version_id="XYZ")
    erase = tx("record.erase", {"record_id": "rec-1", "reason": "patient-request"}, HOSP_A)
    chain.ok(erase)
    erased = chain.query(q, version_id=v1["version_id"])["erased"]
    assert erased is not None and erased["tx"] == erase.hash


def test_anchor_loinc_type_ok(chain: Chain) -> None:
    """A LOINC document code is a valid record type."""
    chain.ok(anchor("rec-loinc", 7, rtype="11506-3"))
    info = ehr.record_info(chain.state(), "rec-loinc")
    assert info is not None and info["type"] == "11506-3"


def test_anchor_unauthorised_signers(chain: Chain) -> None:
    """An insurer or a non-member cannot anchor; another custodian cannot version A's record."""
    assert chain.one(anchor("rec-x", 3, by=INSURER)).code == "unauthorized"
    assert chain.one(anchor("rec-x", 3, by=OUTSIDER)).code == "unauthorized"
    v1 = ehr.record_info(chain.state(), "rec-1")
    assert v1 is not None
    r = chain.one(anchor(i=3, version=2, replaces=v1["version_id"], by=HOSP_B))
    assert r.code == "not-custodian"


def test_anchor_rules(chain: Chain) -> None:
    """Unknown patient, reused commitment, version gaps and wrong replaces are rejected."""
    v1 = ehr.record_info(chain.state(), "rec-1")
    assert v1 is not None
    assert chain.one(anchor("rec-2", 4, patient=P2)).code == "unknown-patient"
    assert chain.one(anchor("rec-2", 1)).code == "commitment-exists"
    assert chain.one(anchor("rec-2", 4, version=2, replaces=v1["version_id"])).code == "bad-version"
    assert chain.one(anchor("rec-1", 4, version=3, replaces=v1["version_id"])).code == "bad-version"
    assert chain.one(anchor("rec-1", 4, version=2, replaces=commitment(0))).code == "bad-replaces"
    assert chain.one(anchor("rec-1", 4, version=2)).code == "bad-replaces"
    chain.ok(enroll(P2))
    r = chain.one(anchor("rec-1", 4, version=2, replaces=v1["version_id"], patient=P2))
    assert r.code == "patient-mismatch"


# ------------------------------------------------------------------ consent.grant / revoke
def test_grant_valid_and_listed(chain: Chain) -> None:
    """A patient's grant yields a consent id, listed with FHIR status among their consents."""
    cid = chain.ok(grant(purpose=("TREAT", "COC")))["consent_id"]
    listed = chain.query("/ehr/patients/{key}/consents", key=P)["consents"]
    assert [c["consent_id"] for c in listed] == [cid]
    assert listed[0]["status"] == "active" and listed[0]["purpose"] == ["COC", "TREAT"]


def test_grant_unauthorised_signers(chain: Chain) -> None:
    """Only an enrolled patient key signs a grant: a member or an unknown key is unauthorized."""
    assert chain.one(grant(by=HOSP_A)).code == "unauthorized"
    assert chain.one(grant(by=OTHER_PATIENT)).code == "unauthorized"


def test_grant_rules(chain: Chain) -> None:
    """Unknown grantee, another patient's record, inconsistent scope, empty period refused."""
    chain.ok(enroll(P2))
    chain.ok(anchor("rec-p2", 8, patient=P2))
    assert chain.one(grant(grantee="nobody")).code == "unknown-grantee"
    assert chain.one(grant(scope="records", data=["rec-p2"])).code == "not-patients-record"
    assert chain.one(grant(scope="records", data=["rec-none"])).code == "unknown-record"
    assert chain.one(grant(scope="records")).code == "malformed"
    assert chain.one(grant(scope="types", data=["rec-1"])).code == "malformed"
    assert chain.one(grant(scope="all", klass=["Observation"])).code == "malformed"
    assert chain.one(grant(start=5, end=5)).code == "bad-period"


def test_revoke_valid_unauthorised_and_twice(chain: Chain) -> None:
    """Only the granting patient revokes; revoking keeps the consent, marked; twice is refused."""
    cid = chain.ok(grant())["consent_id"]
    chain.ok(enroll(P2))
    revoke = {"consent_id": cid}
    assert chain.one(tx("consent.revoke", revoke, OTHER_PATIENT)).code == "unauthorized"
    assert chain.one(tx("consent.revoke", revoke, HOSP_B)).code == "unauthorized"
    unknown = {"consent_id": commitment(0)}
    assert chain.one(tx("consent.revoke", unknown, PATIENT)).code == "unknown-consent"
    chain.ok(tx("consent.revoke", revoke, PATIENT))
    assert chain.one(tx("consent.revoke", revoke, PATIENT)).code == "already-revoked"
    listed = chain.query("/ehr/patients/{key}/consents", key=P)["consents"]
    assert listed[0]["revoked"]["height"] == chain.height - 1
    assert listed[0]["status"] == "inactive"


# ------------------------------------------------------------------ access.log
def test_access_valid_and_in_disclosures(chain: Chain) -> None:
    """An access under a covering consent is ok and appears in the accounting of disclosures."""
    cid = chain.ok(grant())["consent_id"]
    chain.ok(access(cid))
    d = chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"]
    assert len(d) == 1
    assert {k: d[0][k] for k in ("agent", "purpose", "consent_id", "emergency", "record_id")} == {
        "agent": "clinic-b",
        "purpose": "TREAT",
        "consent_id": cid,
        "emergency": False,
        "record_id": "rec-1",
    }


def test_access_unauthorised_signers(chain: Chain) -> None:
    """A non-member is unauthorized; a member not named in the consent is consent-grantee."""
    cid = chain.ok(grant())["consent_id"]
    assert chain.one(access(cid, by=OUTSIDER)).code == "unauthorized"
    assert chain.one(access(cid, by=PATIENT)).code == "unauthorized"
    assert chain.one(access(cid, by=INSURER)).code == "consent-grantee"
    assert chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"] == []


def test_consent_timing_before_during_after_and_revoked(chain: Chain) -> None:
    """Accepted only inside [start, end) of block time and until revoked; reason says which."""
    h = chain.height + 1  # grant's block
    start, end = chain.time(h + 2), chain.time(h + 4)  # valid for blocks h+2 and h+3
    cid = chain.ok(grant(start=start, end=end))["consent_id"]
    assert chain.one(access(cid)).code == "consent-not-yet-valid"  # h+1
    assert chain.one(access(cid)).status == "ok"  # h+2: at start
    assert chain.one(access(cid)).status == "ok"  # h+3
    assert chain.one(access(cid)).code == "consent-expired"  # h+4: at end
    cid2 = chain.ok(grant())["consent_id"]
    chain.ok(access(cid2))
    chain.ok(tx("consent.revoke", {"consent_id": cid2}, PATIENT))
    assert chain.one(access(cid2)).code == "consent-revoked"


def test_consent_scope_by_record_type_and_all(chain: Chain) -> None:
    """A records scope covers only its ids, a types scope only its types, all covers all."""
    chain.ok(anchor("rec-obs", 20, rtype="Observation"))
    by_id = chain.ok(grant(scope="records", data=["rec-1"]))["consent_id"]
    by_type = chain.ok(grant(scope="types", klass=["Observation"]))["consent_id"]
    every = chain.ok(grant(scope="all"))["consent_id"]
    assert chain.one(access(by_id, "rec-1")).status == "ok"
    assert chain.one(access(by_id, "rec-obs")).code == "consent-scope"
    assert chain.one(access(by_type, "rec-obs")).status == "ok"
    assert chain.one(access(by_type, "rec-1")).code == "consent-scope"
    assert chain.one(access(every, "rec-1")).status == "ok"
    assert chain.one(access(every, "rec-obs")).status == "ok"
    assert chain.one(access(every, "rec-none")).code == "unknown-record"
    assert chain.one(access(commitment(0), "rec-1")).code == "unknown-consent"


def test_consent_of_another_patient_does_not_cover(chain: Chain) -> None:
    """Patient 2's all-records consent does not open patient 1's record."""
    chain.ok(enroll(P2))
    cid = chain.ok(grant(by=OTHER_PATIENT))["consent_id"]
    assert chain.one(access(cid, "rec-1")).code == "consent-scope"


def test_wrong_purpose_is_rejected(chain: Chain) -> None:
    """A treatment consent does not cover research; may-access says so too."""
    cid = chain.ok(grant(purpose=("TREAT",)))["consent_id"]
    assert chain.one(access(cid, purpose="HRESCH")).code == "consent-purpose"
    q = "/ehr/records/{record_id}/may-access"
    ans = chain.query(q, {"member": "clinic-b", "purpose": "HRESCH"}, record_id="rec-1")
    assert (ans["allowed"], ans["reason"]) == (False, "consent-purpose")


def test_may_access_now_is_the_latest_block_time(chain: Chain) -> None:
    """may-access answers at the latest block time: no consent, allowed, expired, revoked."""
    q = "/ehr/records/{record_id}/may-access"
    params = {"member": "clinic-b", "purpose": "TREAT"}
    assert chain.query(q, params, record_id="rec-1")["reason"] == "no-consent"
    end = chain.time(chain.height + 2)
    cid = chain.ok(grant(end=end))["consent_id"]
    ans = chain.query(q, params, record_id="rec-1")
    assert (ans["allowed"], ans["consent_id"], ans["time"]) == (True, cid, chain.time(chain.height))
    assert chain.query(q, {**params, "member": "ins-c"}, record_id="rec-1")["allowed"] is False
    chain.block()  # time reaches end
    assert chain.query(q, params, record_id="rec-1")["reason"] == "consent-expired"
    cid2 = chain.ok(grant())["consent_id"]
    assert chain.query(q, params, record_id="rec-1")["consent_id"] == cid2
    chain.ok(tx("consent.revoke", {"consent_id": cid2}, PATIENT))
    assert chain.query(q, params, record_id="rec-1")["reason"] == "consent-revoked"
    assert chain.query(q, params, record_id="rec-none")["reason"] == "unknown-record"
    with pytest.raises(Rejection):
        chain.query(q, {"member": "clinic-b", "purpose": "SELL"}, record_id="rec-1")


# ------------------------------------------------------------------ access.emergency
def test_emergency_is_flagged_and_visible_to_patient_and_auditors(chain: Chain) -> None:
    """Break-glass needs no consent, is flagged, time-boxed, in disclosures and the audit list."""
    data = chain.ok(emergency(reason="BTG"))
    assert data["emergency"] is True
    now = chain.time(chain.height)
    assert data["period"] == {"start": now, "end": now + 3_600_000}
    d = chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"]
    assert [(e["kind"], e["emergency"], e["agent"], e["reason"]) for e in d] == [
        ("emergency", True, "clinic-b", "BTG")
    ]
    audit = chain.query("/ehr/emergency-accesses", {})["emergency_accesses"]
    assert audit == d


def test_emergency_unauthorised_and_unknown_record(chain: Chain) -> None:
    """Only hospitals/clinics break the glass; an unknown record is refused."""
    assert chain.one(emergency(by=INSURER)).code == "unauthorized"
    assert chain.one(emergency(by=OUTSIDER)).code == "unauthorized"
    assert chain.one(emergency(rid="rec-none")).code == "unknown-record"
    assert chain.query("/ehr/emergency-accesses", {})["emergency_accesses"] == []


# ------------------------------------------------------------------ queries
def test_query_parameters_are_checked(chain: Chain) -> None:
    """Bad keys, record ids and limits are 400s (Rejection); unknown things are 404s (None)."""
    with pytest.raises(Rejection):
        chain.query("/ehr/patients/{key}", key="XYZ")
    with pytest.raises(Rejection):
        chain.query("/ehr/records/{record_id}", record_id="a/b")
    with pytest.raises(Rejection):
        chain.query("/ehr/emergency-accesses", {"limit": "0"})
    assert chain.query("/ehr/patients/{key}/disclosures", key=P2) is None
    assert chain.query("/ehr/records/{record_id}/history", record_id="nope") is None


def test_disclosures_are_paged(chain: Chain) -> None:
    """limit and from_height bound the accounting of disclosures."""
    cid = chain.ok(grant())["consent_id"]
    for _ in range(3):
        chain.ok(access(cid))
    q = "/ehr/patients/{key}/disclosures"
    assert len(chain.query(q, {"limit": "2"}, key=P)["disclosures"]) == 2
    last = chain.height
    assert [
        e["height"] for e in chain.query(q, {"from_height": str(last)}, key=P)["disclosures"]
    ] == [last]


# ------------------------------------------------------------------ determinism
def _mixed_workload(c: Chain) -> list[str]:
    v1 = anchor("m-1", 100)
    g = grant(scope="types", purpose=("TREAT", "HPAYMT"), klass=["Observation"])
    c.block(enroll(), enroll(P2, by=HOSP_B), v1)
    c.block(
        anchor("m-2", 101, rtype="Observation"),
        anchor("m-1", 102, version=2, replaces=v1.hash),
        g,
        grant(by=OTHER_PATIENT, grantee="ins-c"),
    )
    results = c.block(
        access(g.hash, "m-2"),
        access(g.hash, "m-1"),  # rejected: scope
        emergency("m-1"),
        tx("consent.revoke", {"consent_id": g.hash}, PATIENT),
        access(g.hash, "m-2"),  # rejected: revoked
    )
    return [r.code for r in results]


def test_state_roots_equal_across_two_independent_executions() -> None:
    """The same mixed workload (ok and rejected txs of every type) yields the same roots."""
    global _nonce
    roots = []
    for _ in range(2):
        _nonce = itertools.count(1000)  # same nonces, same tx hashes
        c = Chain()
        codes = _mixed_workload(c)
        assert codes == ["ok", "consent-scope", "ok", "ok", "consent-revoked"]
        roots.append(c.roots)
    assert roots[0] == roots[1]
    assert len(set(roots[0])) == 3
