"""Health records, break-glass and custodian access: may-access during an open emergency
window, the custodian's own access (may-access and ``access.log`` without consent), and the
auditors' review of a break-glass access (``access.review``)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx
from node.exchange.ticket import TicketRefused, check_ticket
from node.ledger.context import BlockInfo
from node.ledger.domains import ehr
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
from tests.unit import test_ledger_ehr as base
from tests.unit.ledger_helpers import execute_and_commit
from tests.unit.test_ledger_ehr import (
    CHAIN,
    HOSP_A,
    HOSP_B,
    INSURER,
    MEMBERS,
    OUTSIDER,
    PATIENT,
    P,
    access,
    anchor,
    enroll,
    grant,
    tx,
)

AUDITOR = key_from_seed(b"\x11" * 32)
REGULATOR = key_from_seed(b"\x12" * 32)
CLINIC_AUDITOR = key_from_seed(b"\x13" * 32)  # a clinic that is also an auditor
ALL_MEMBERS = [
    *MEMBERS,
    {"id": "aud-d", "name": "Auditor D", "roles": ["auditor"], "keys": [public_key_hex(AUDITOR)]},
    {
        "id": "reg-e",
        "name": "Regulator E",
        "roles": ["regulator"],
        "keys": [public_key_hex(REGULATOR)],
    },
    {
        "id": "clinic-f",
        "name": "Clinic F",
        "roles": ["clinic", "auditor"],
        "keys": [public_key_hex(CLINIC_AUDITOR)],
    },
]
MAY = "/ehr/records/{record_id}/may-access"
NO_CONSENT = "00" * 32  # an access.log names a consent; the custodian's needs none


class Chain(base.Chain):
    """The health-records test chain with an auditor, a regulator and a clinic-auditor."""

    def block(self, *txs: Tx) -> list[TxResult]:
        self.height += 1
        block = BlockInfo(CHAIN, self.height, self.time(self.height), 0)
        out = execute_and_commit(self.store, self.ledger, block, txs, self.root, ALL_MEMBERS)
        self.root = out.state_root
        self.roots.append(out.state_root)
        return out.results


def emergency(rid: str = "rec-1", ms: int = 2000, by: Any = HOSP_B) -> Tx:
    return tx("access.emergency", {"record_id": rid, "reason": "ETREAT", "duration_ms": ms}, by)


def review(target: str, finding: str = "justified", by: Any = AUDITOR) -> Tx:
    return tx("access.review", {"emergency": target, "finding": finding}, by)


def may(c: Chain, member: str = "clinic-b", rid: str = "rec-1", purpose: str = "TREAT") -> Any:
    return c.query(MAY, {"member": member, "purpose": purpose}, record_id=rid)


@pytest.fixture
def chain() -> Chain:
    """P enrolled by hospital A; rec-1 and rec-2 of P anchored by hospital A (custodian)."""
    c = Chain()
    c.ok(enroll())
    c.ok(anchor())
    c.ok(anchor("rec-2", 2))
    return c


# ------------------------------------------------------------------ may-access: emergency
def test_may_access_is_allowed_during_the_members_emergency_window(chain: Chain) -> None:
    """Inside [start, end) of the member's break-glass window on the record: allowed
    (emergency); before it, after it, for another member or another record: not."""
    assert (may(chain)["allowed"], may(chain)["reason"]) == (False, "no-consent")
    e = emergency(ms=2000)
    data = chain.ok(e)
    ans = may(chain)
    assert (ans["allowed"], ans["reason"], ans["consent_id"]) == (True, "emergency", None)
    assert ans["emergency"] == {"tx": e.hash, "reason": "ETREAT", "period": data["period"]}
    assert may(chain, purpose="HPAYMT")["reason"] == "emergency"  # as the ticket: any purpose
    assert may(chain, member="ins-c")["allowed"] is False
    assert may(chain, rid="rec-2")["allowed"] is False
    chain.block()  # start + 1000: still open
    assert may(chain)["reason"] == "emergency"
    chain.block()  # start + 2000 = end: closed
    ans = may(chain)
    assert (ans["allowed"], ans["reason"], ans["emergency"]) == (False, "no-consent", None)


def test_a_covering_consent_is_preferred_to_the_emergency(chain: Chain) -> None:
    """With a covering consent the answer names the consent, not the break-glass window."""
    chain.ok(emergency(ms=60_000))
    cid = chain.ok(grant())["consent_id"]
    ans = may(chain)
    assert (ans["reason"], ans["consent_id"], ans["emergency"]) == ("ok", cid, None)


def test_no_emergency_answer_for_an_erased_record(chain: Chain) -> None:
    """An erased record is erased, whatever window is open."""
    chain.ok(emergency(ms=60_000))
    chain.ok(tx("record.erase", {"record_id": "rec-1", "reason": "legal-order"}, HOSP_A))
    assert (may(chain)["allowed"], may(chain)["reason"]) == (False, "erased")


# ------------------------------------------------------------------ custodian
def test_custodian_may_always_access_its_own_record(chain: Chain) -> None:
    """The record's custodian is allowed without consent, for any purpose; another
    hospital is not; the custodian of an erased record is not."""
    for purpose in ("TREAT", "HOPERAT"):
        ans = may(chain, member="hosp-a", purpose=purpose)
        assert (ans["allowed"], ans["reason"], ans["consent_id"]) == (True, "custodian", None)
    assert (may(chain)["allowed"], may(chain)["reason"]) == (False, "no-consent")
    chain.ok(tx("record.erase", {"record_id": "rec-1", "reason": "legal-order"}, HOSP_A))
    assert may(chain, member="hosp-a")["reason"] == "erased"
    assert may(chain, member="hosp-a", rid="rec-2")["reason"] == "custodian"


def test_custodian_access_log_needs_no_consent_and_is_no_ticket(chain: Chain) -> None:
    """access.log by the record's custodian without a covering consent is accepted as a
    custodian access: listed in the disclosures, not an access event (no ticket). The
    same transaction by another member is refused."""
    t = access(NO_CONSENT, by=HOSP_A)
    assert chain.ok(t)["record_id"] == "rec-1"
    (d,) = chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"]
    assert (d["kind"], d["agent"], d["consent_id"], d["emergency"], d["tx"]) == (
        "custodian",
        "hosp-a",
        None,
        False,
        t.hash,
    )
    assert ehr.access_event(chain.state(), t.hash) is None
    version_id = ehr.record_info(chain.state(), "rec-1")["version_id"]  # type: ignore[index]
    with pytest.raises(TicketRefused) as err:
        check_ticket(chain.state(), version_id=version_id, ticket=t.hash, requester_member="hosp-a")
    assert err.value.code == "ticket-mismatch"
    assert chain.one(access(NO_CONSENT)).code == "unknown-consent"
    assert chain.one(access(NO_CONSENT, rid="rec-none", by=HOSP_A)).code == "unknown-record"


def test_custodian_access_under_a_covering_consent_stays_a_consent_access(chain: Chain) -> None:
    """A consent that covers the custodian's access makes it an ordinary access (a ticket)."""
    cid = chain.ok(grant(grantee="hosp-a"))["consent_id"]
    t = access(cid, by=HOSP_A)
    chain.ok(t)
    event = ehr.access_event(chain.state(), t.hash)
    assert event is not None and (event["kind"], event["consent_id"]) == ("access", cid)


def test_custodian_access_to_an_erased_record_is_refused(chain: Chain) -> None:
    chain.ok(tx("record.erase", {"record_id": "rec-1", "reason": "legal-order"}, HOSP_A))
    assert chain.one(access(NO_CONSENT, by=HOSP_A)).code == "erased"


# ------------------------------------------------------------------ access.review
def test_auditor_closes_a_review_shown_to_auditors_and_patient(chain: Chain) -> None:
    """An auditor's finding is stored with the emergency; both lists show it; a regulator
    may review too; an unreviewed emergency shows review null."""
    e1, e2 = emergency(), emergency("rec-2")
    chain.ok(e1)
    chain.ok(e2)
    audit = chain.query("/ehr/emergency-accesses", {})["emergency_accesses"]
    assert [a["review"] for a in audit] == [None, None]
    r = review(e1.hash, "unjustified")
    data = chain.ok(r)
    assert data == {"emergency": e1.hash, "finding": "unjustified", "reviewer": "aud-d"}
    chain.ok(review(e2.hash, "inconclusive", by=REGULATOR))
    audit = chain.query("/ehr/emergency-accesses", {})["emergency_accesses"]
    first = audit[0]["review"]
    assert (first["finding"], first["reviewer"], first["tx"], first["height"]) == (
        "unjustified",
        "aud-d",
        r.hash,
        chain.height - 1,
    )
    assert audit[1]["review"]["reviewer"] == "reg-e"
    d = chain.query("/ehr/patients/{key}/disclosures", key=P)["disclosures"]
    assert d == audit


def test_review_rejections(chain: Chain) -> None:
    """unknown-emergency (no such tx, an ordinary or custodian access), already-reviewed,
    own-emergency (a clinic-auditor reviewing its own break-glass)."""
    assert chain.one(review("ab" * 32)).code == "unknown-emergency"
    cid = chain.ok(grant())["consent_id"]
    ordinary, own_access = access(cid), access(NO_CONSENT, by=HOSP_A)
    chain.ok(ordinary)
    chain.ok(own_access)
    assert chain.one(review(ordinary.hash)).code == "unknown-emergency"
    assert chain.one(review(own_access.hash)).code == "unknown-emergency"
    e = emergency()
    chain.ok(e)
    chain.ok(review(e.hash))
    assert chain.one(review(e.hash, "unjustified", by=REGULATOR)).code == "already-reviewed"
    own = emergency(by=CLINIC_AUDITOR)
    chain.ok(own)
    assert chain.one(review(own.hash, by=CLINIC_AUDITOR)).code == "own-emergency"
    chain.ok(review(own.hash))


@pytest.mark.parametrize("who", [HOSP_A, HOSP_B, INSURER, OUTSIDER, PATIENT])
def test_only_an_auditor_or_regulator_reviews(chain: Chain, who: Any) -> None:
    e = emergency()
    chain.ok(e)
    assert chain.one(review(e.hash, by=who)).code == "unauthorized"
    assert chain.query("/ehr/emergency-accesses", {})["emergency_accesses"][0]["review"] is None


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"emergency": "x", "finding": "justified"}, "body.emergency"),
        ({"emergency": "ab" * 32, "finding": "fine"}, "body.finding"),
        ({"emergency": "ab" * 32, "finding": "justified", "note": "Jane"}, "body.note"),
    ],
)
def test_review_malformed(body: dict[str, Any], where: str) -> None:
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("access.review", body, AUDITOR))
    assert err.value.code == "malformed" and where in err.value.message


def test_review_replay(chain: Chain) -> None:
    e = emergency()
    chain.ok(e)
    r = review(e.hash)
    assert chain.one(r).status == "ok" and chain.one(r).code == "replay"


def test_state_roots_equal_across_two_executions() -> None:
    """Break-glass, custodian access and reviews (ok and rejected) give the same roots."""
    roots = []
    for _ in range(2):
        base._nonce = itertools.count(5000)  # same nonces, same tx hashes
        c = Chain()
        c.block(enroll(), anchor())
        e = emergency()
        results = c.block(
            e, access(NO_CONSENT, by=HOSP_A), review(e.hash), review(e.hash), review("ab" * 32)
        )
        codes = [r.code for r in results]
        assert codes == ["ok", "ok", "ok", "already-reviewed", "unknown-emergency"]
        roots.append(c.roots)
    assert roots[0] == roots[1]
