"""Health records: record.erase (every rejection, what an erased record refuses, the
queries), the version index (``ehr.version_of``) and the access index (``ehr.access_event``)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from node.ledger.domains import ehr
from node.ledger.executor import Ledger
from node.ledger.result import Rejection
from tests.unit import test_ledger_ehr as base
from tests.unit.test_ledger_ehr import (
    HOSP_A,
    HOSP_B,
    INSURER,
    OTHER_PATIENT,
    OUTSIDER,
    P2,
    PATIENT,
    Chain,
    P,
    access,
    anchor,
    commitment,
    emergency,
    enroll,
    grant,
    tx,
)


def erase(rid: str = "rec-1", reason: str = "patient-request", by: Any = HOSP_A) -> Any:
    return tx("record.erase", {"record_id": rid, "reason": reason}, by)


@pytest.fixture
def chain() -> Chain:
    """P enrolled; rec-1 of P anchored by hospital A in versions 1 and 2; rec-2 of P too."""
    c = Chain()
    c.ok(enroll())
    v1 = c.ok(anchor())["version_id"]
    c.ok(anchor(i=2, version=2, replaces=v1))
    c.ok(anchor("rec-2", 3))
    return c


def versions(c: Chain, rid: str = "rec-1") -> list[str]:
    hist = c.query("/ehr/records/{record_id}/history", record_id=rid)
    return [v["version_id"] for v in hist["versions"]]


# ------------------------------------------------------------------ record.erase
def test_erase_records_the_fact_on_the_record_and_every_version(chain: Chain) -> None:
    """The custodian's erase marks the record with height, time, reason and tx; every
    version, the history, the commitments and may-access show it erased."""
    t = erase(reason="legal-order")
    data = chain.ok(t)
    want = {"height": chain.height, "time": chain.time(chain.height), "reason": "legal-order"}
    erased = {**want, "tx": t.hash}
    assert data == {"record_id": "rec-1", "versions": 2, "erased": erased}
    info = ehr.record_info(chain.state(), "rec-1")
    assert info is not None and info["erased"] == erased and info["version"] == 2
    assert chain.query("/ehr/records/{record_id}", record_id="rec-1") == info
    hist = chain.query("/ehr/records/{record_id}/history", record_id="rec-1")
    assert hist["erased"] == erased and [v["version"] for v in hist["versions"]] == [1, 2]
    for vid in versions(chain):
        found = ehr.version_of(chain.state(), vid)
        assert found is not None and found["erased"] == erased
    # the commitments stay on chain, and say whose record they were
    for i in (1, 2):
        found = chain.query("/ehr/commitments/{commitment}", commitment=commitment(i))
        assert found["record_id"] == "rec-1" and found["erased"] == erased
    q = "/ehr/records/{record_id}/may-access"
    chain.ok(grant())
    ans = chain.query(q, {"member": "clinic-b", "purpose": "TREAT"}, record_id="rec-1")
    assert (ans["allowed"], ans["reason"]) == (False, "erased")
    # another record of the same patient is untouched
    other = ehr.record_info(chain.state(), "rec-2")
    assert other is not None and other["erased"] is None
    ans = chain.query(q, {"member": "clinic-b", "purpose": "TREAT"}, record_id="rec-2")
    assert ans["allowed"] is True


@pytest.mark.parametrize("reason", ehr.ERASE_REASONS)
def test_every_reason_is_accepted(chain: Chain, reason: str) -> None:
    assert chain.ok(erase(reason=reason))["erased"]["reason"] == reason


def test_erase_rejections(chain: Chain) -> None:
    """unknown-record, not-custodian (another custodian), already-erased; each changes
    nothing but its own result."""
    assert chain.one(erase("rec-none")).code == "unknown-record"
    r = chain.one(erase(by=HOSP_B))
    assert (r.code, r.message) == ("not-custodian", "record rec-1 is held by hosp-a")
    info = ehr.record_info(chain.state(), "rec-1")
    assert info is not None and info["erased"] is None
    first = erase()
    chain.ok(first)
    at = chain.height
    r = chain.one(erase(reason="entered-in-error"))
    assert (r.code, r.message) == ("already-erased", f"record rec-1 was erased at height {at}")
    assert chain.one(erase(by=HOSP_B)).code == "not-custodian"  # custodian first
    info = ehr.record_info(chain.state(), "rec-1")
    assert info is not None and info["erased"]["tx"] == first.hash
    assert chain.one(first).code == "replay"


def test_erase_unauthorised_signers(chain: Chain) -> None:
    """Only a custodian-role member signs (as record.anchor): an insurer, a stranger, the
    patient are unauthorized, and refused at admission too."""
    for key in (INSURER, OUTSIDER, PATIENT):
        assert chain.one(erase(by=key)).code == "unauthorized"
    with pytest.raises(Rejection) as err:
        chain.ledger.check_signer(chain.store, erase(by=PATIENT))
    assert err.value.code == "signer-not-allowed"
    chain.ledger.check_signer(chain.store, erase(by=HOSP_A))


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"record_id": "rec-1"}, "body.reason"),
        ({"record_id": "rec-1", "reason": "because"}, "body.reason"),
        ({"record_id": "a/b", "reason": "legal-order"}, "body.record_id"),
        ({"record_id": "rec-1", "reason": "legal-order", "note": "Jane"}, "body.note"),
    ],
)
def test_malformed_erase_bodies(body: dict[str, Any], where: str) -> None:
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("record.erase", body, HOSP_A))
    assert err.value.code == "malformed" and where in err.value.message


# ------------------------------------------------------------------ after erasure
def test_an_erased_record_refuses_anchors_grants_and_accesses(chain: Chain) -> None:
    """After the erase: a next version, a grant naming the record and an access or
    emergency access to it are rejected ``erased``; the record's commitments stay taken;
    other records and consents not naming it work as before."""
    cid = chain.ok(grant())["consent_id"]  # scope all, before the erase
    chain.ok(access(cid))
    chain.ok(erase())
    latest = ehr.record_info(chain.state(), "rec-1")
    assert latest is not None
    assert chain.one(anchor(i=9, version=3, replaces=latest["version_id"])).code == "erased"
    assert chain.one(anchor(i=9)).code == "erased"  # not a fresh record either
    assert chain.one(anchor(i=9, by=HOSP_B)).code == "erased"
    assert chain.one(grant(scope="records", data=["rec-1"])).code == "erased"
    assert chain.one(grant(scope="records", data=["rec-2", "rec-1"])).code == "erased"
    assert chain.one(access(cid)).code == "erased"
    assert chain.one(emergency()).code == "erased"
    assert chain.one(anchor("rec-3", 1)).code == "commitment-exists"
    # what does not name the erased record goes on
    assert chain.one(grant(scope="records", data=["rec-2"])).status == "ok"
    assert chain.one(grant()).status == "ok"
    assert chain.one(access(cid, "rec-2")).status == "ok"
    assert chain.one(emergency("rec-2")).status == "ok"
    info = ehr.record_info(chain.state(), "rec-1")
    assert info is not None and info["version"] == 2


def test_erased_comes_before_the_other_access_rules(chain: Chain) -> None:
    """An access to an erased record is ``erased`` even under an unknown consent, and a
    record of another patient stays ``unknown-record`` when it does not exist."""
    chain.ok(erase())
    assert chain.one(access(commitment(0))).code == "erased"
    assert chain.one(access(commitment(0), "rec-none")).code == "unknown-record"
    chain.ok(enroll(P2))
    assert chain.one(grant(scope="records", data=["rec-1"], by=OTHER_PATIENT)).code == "erased"


# ------------------------------------------------------------------ indexes
def test_version_of_maps_every_version_id(chain: Chain) -> None:
    """version_of(anchor tx hash) is that version's entry with the latest version number;
    None for a rejected anchor, another transaction, a random or malformed id."""
    v1, v2 = versions(chain)
    for vid, n in ((v1, 1), (v2, 2)):
        found = ehr.version_of(chain.state(), vid)
        assert found is not None
        assert (found["record_id"], found["version"], found["version_id"]) == ("rec-1", n, vid)
        assert (found["latest"], found["erased"], found["patient"]) == (2, None, P)
    rejected = anchor("rec-9", 1)  # commitment-exists
    assert chain.one(rejected).code == "commitment-exists"
    g = grant()
    chain.ok(g)
    for vid in (rejected.hash, g.hash, commitment(77), "XYZ", v1.upper()):
        assert ehr.version_of(chain.state(), vid) is None


def test_access_event_maps_the_access_transaction_to_its_disclosure(chain: Chain) -> None:
    """access_event(tx hash) is the event in the patient's accounting of disclosures, for
    access.log and access.emergency; None for a rejected access and other transactions."""
    g = grant()
    chain.ok(g)
    a, e = access(g.hash), emergency("rec-2", reason="BTG")
    chain.ok(a)
    chain.ok(e)
    d = chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"]
    assert ehr.access_event(chain.state(), a.hash) == d[0]
    assert ehr.access_event(chain.state(), e.hash) == d[1]
    assert d[0]["tx"] == a.hash and d[1]["tx"] == e.hash
    bad = access(g.hash, purpose="HRESCH")
    assert chain.one(bad).code == "consent-purpose"
    for h in (bad.hash, g.hash, commitment(5), "nope"):
        assert ehr.access_event(chain.state(), h) is None


# ------------------------------------------------------------------ determinism
def _workload(c: Chain) -> list[str]:
    v1 = anchor("m-1", 100)
    g = grant(scope="all", purpose=("TREAT",))
    c.block(enroll(), enroll(P2, by=HOSP_B), v1)
    c.block(
        anchor("m-2", 101, rtype="Observation", by=HOSP_B),
        anchor("m-1", 102, version=2, replaces=v1.hash),
        g,
    )
    c.block(access(g.hash, "m-1"), emergency("m-2"), erase("m-2", by=HOSP_A))
    results = c.block(
        erase("m-1", reason="retention-expired"),
        erase("m-2", by=HOSP_B),
        erase("m-1"),  # already-erased
        access(g.hash, "m-1"),  # erased
        anchor("m-1", 103, version=3, replaces=v1.hash),  # erased
        access(g.hash, "m-2"),  # erased
    )
    return [r.code for r in results]


def test_state_roots_equal_across_two_executions(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same workload of erasures (ok and rejected), accesses and anchors gives the same
    state roots, and the same erased records, on two independent executions."""
    roots, infos = [], []
    for _ in range(2):
        monkeypatch.setattr(base, "_nonce", itertools.count(7000))  # same tx hashes
        c = Chain()
        assert _workload(c) == ["ok", "ok", "already-erased", "erased", "erased", "erased"]
        roots.append(c.roots)
        infos.append([ehr.record_info(c.state(), r) for r in ("m-1", "m-2")])
    assert roots[0] == roots[1] and len(set(roots[0])) == 4
    assert infos[0] == infos[1]
    assert [i["erased"]["reason"] for i in infos[0] if i] == [
        "retention-expired",
        "patient-request",
    ]


# ------------------------------------------------------------------ docs
def test_docs_list_the_rejections_and_reasons() -> None:
    """docs/transactions.md lists record.erase's rejection codes and every reason; the
    health-records page has its Erasure section and command."""
    root = Path(__file__).resolve().parents[2] / "docs"
    doc = (root / "transactions.md").read_text(encoding="utf-8")
    section = doc.split("## Record erasure", 1)[1].split("\n## ", 1)[0]
    codes = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    assert codes == {
        "malformed",
        "unauthorized",
        "unknown-record",
        "not-custodian",
        "already-erased",
    }
    for reason in ehr.ERASE_REASONS:
        assert f"`{reason}`" in section, reason
    assert "`erased`" in section
    health = (root / "health-records.md").read_text(encoding="utf-8")
    assert "## Erasure" in health and "hygeia client ehr erase" in health
