"""The custodian's ticket check (``node.exchange.ticket.check_ticket``): every refusal
code, when it applies and when it does not, and the order they are checked in."""

from __future__ import annotations

from typing import Any

import pytest

from node.exchange.ticket import REFUSAL_CODES, TicketGrant, TicketRefused, check_ticket
from tests.unit.test_ledger_ehr import (
    HOSP_A,
    HOSP_B,
    INSURER,
    PATIENT,
    Chain,
    P,
    access,
    anchor,
    commitment,
    enroll,
    grant,
    tx,
)


class Setup:
    """rec-1 (v1) and rec-2 of P anchored by hospital A; a consent of P to clinic B
    (scope all, TREAT); ``ticket``: clinic B's access to rec-1 under it."""

    def __init__(self) -> None:
        self.chain = c = Chain()
        c.ok(enroll())
        self.v1 = c.ok(anchor())["version_id"]
        self.rec2 = c.ok(anchor("rec-2", 2))["version_id"]
        self.consent = c.ok(grant())["consent_id"]
        t = access(self.consent)
        c.ok(t)
        self.ticket = t.hash

    def check(
        self, ticket: str | None = "", version_id: str = "", member: str = "clinic-b"
    ) -> TicketGrant:
        return check_ticket(
            self.chain.state(),
            version_id=version_id or self.v1,
            ticket=self.ticket if ticket == "" else ticket,
            requester_member=member,
        )

    def refused(self, **kw: Any) -> str:
        with pytest.raises(TicketRefused) as err:
            self.check(**kw)
        assert err.value.code in REFUSAL_CODES and err.value.message
        return err.value.code

    def commit(self, t: Any) -> str:
        """Commit ``t`` (whatever its outcome) and return its hash."""
        self.chain.one(t)
        return str(t.hash)


@pytest.fixture
def s() -> Setup:
    return Setup()


def emergency_tx(rid: str = "rec-1", duration_ms: int = 2000, by: Any = HOSP_B) -> Any:
    body = {"record_id": rid, "reason": "ETREAT", "duration_ms": duration_ms}
    return tx("access.emergency", body, by)


# ------------------------------------------------------------------ a good ticket
def test_a_good_ticket_passes_and_says_what_it_opens(s: Setup) -> None:
    grant_ = s.check()
    assert grant_ == TicketGrant(
        record_id="rec-1",
        version=1,
        version_id=s.v1,
        requester_member="clinic-b",
        kind="consent",
        patient=P,
        ticket=s.ticket,
        consent_id=s.consent,
        valid_until=10**12,
        time=s.chain.time(s.chain.height),
    )


def test_a_ticket_is_for_the_record_every_version_of_it(s: Setup) -> None:
    """A ticket logged at version 1 opens version 2, anchored later, and still version 1."""
    v2 = s.chain.ok(anchor(i=3, version=2, replaces=s.v1))["version_id"]
    assert s.check(version_id=v2).version == 2
    assert s.check(version_id=s.v1).version == 1


def test_an_emergency_ticket_passes_inside_its_window(s: Setup) -> None:
    t = emergency_tx()
    s.chain.ok(t)
    start = s.chain.time(s.chain.height)
    grant_ = s.check(ticket=t.hash)
    assert (grant_.kind, grant_.consent_id, grant_.valid_until) == ("emergency", None, start + 2000)
    s.chain.block()  # start + 1000: still inside
    assert s.check(ticket=t.hash).time == start + 1000
    s.chain.block()  # start + 2000: the window is [start, end)
    assert s.refused(ticket=t.hash) == "emergency-expired"


# ------------------------------------------------------------------ each refusal
def test_unknown_version(s: Setup) -> None:
    """A random id, a rejected anchor's hash, another transaction's hash are unknown
    versions; a good ticket does not help."""
    rejected = s.commit(anchor("rec-9", 1))  # commitment-exists
    for vid in (commitment(42), rejected, s.ticket, s.consent, "not-hex"):
        assert s.refused(version_id=vid) == "unknown-version"
    assert s.check(version_id=s.rec2, ticket=s.commit(access(s.consent, "rec-2"))).version == 1


def test_erased_whatever_the_ticket(s: Setup) -> None:
    s.chain.ok(tx("record.erase", {"record_id": "rec-1", "reason": "patient-request"}, HOSP_A))
    for ticket in (s.ticket, None, commitment(1)):
        assert s.refused(ticket=ticket) == "erased"
    # another record of the patient is not erased
    assert s.check(version_id=s.rec2, ticket=s.commit(access(s.consent, "rec-2"))).record_id


def test_no_ticket(s: Setup) -> None:
    """No ticket, a random hash, a malformed one: no-ticket."""
    for ticket in (None, commitment(99), "XYZ", s.ticket.upper()):
        assert s.refused(ticket=ticket) == "no-ticket"
    s.check()


def test_ticket_rejected(s: Setup) -> None:
    """A committed but rejected access (wrong purpose) is no ticket; an ok one is."""
    bad = s.commit(access(s.consent, purpose="HRESCH"))
    assert s.refused(ticket=bad) == "ticket-rejected"
    ok = s.commit(access(s.consent, purpose="TREAT"))
    assert s.check(ticket=ok).ticket == ok


def test_ticket_mismatch(s: Setup) -> None:
    """A committed transaction that is not an access (the grant, an anchor), or an access
    to another record, does not open this record."""
    other = s.commit(access(s.consent, "rec-2"))
    for ticket in (s.consent, s.v1, other):
        assert s.refused(ticket=ticket) == "ticket-mismatch"
    assert s.check(version_id=s.rec2, ticket=other).record_id == "rec-2"


def test_wrong_requester(s: Setup) -> None:
    """Clinic B's ticket presented by hospital A, and A's own ticket presented by B."""
    assert s.refused(member="hosp-a") == "wrong-requester"
    cid = s.chain.ok(grant(grantee="hosp-a"))["consent_id"]
    theirs = s.commit(access(cid, by=HOSP_A))
    assert s.refused(ticket=theirs) == "wrong-requester"
    assert s.check(ticket=theirs, member="hosp-a").requester_member == "hosp-a"


def test_consent_revoked(s: Setup) -> None:
    """A revocation of another consent changes nothing; of the ticket's, it ends it."""
    other = s.chain.ok(grant(grantee="ins-c", purpose=("HPAYMT",)))["consent_id"]
    s.chain.ok(tx("consent.revoke", {"consent_id": other}, PATIENT))
    s.check()
    s.chain.ok(tx("consent.revoke", {"consent_id": s.consent}, PATIENT))
    assert s.refused() == "consent-revoked"


def test_consent_expired_by_block_time(s: Setup) -> None:
    """Valid before the consent's period end, refused from it on (block time, not a clock)."""
    end = s.chain.time(s.chain.height + 4)
    cid = s.chain.ok(grant(end=end))["consent_id"]
    ticket = s.commit(access(cid))  # at end - 2000
    assert s.check(ticket=ticket).valid_until == end
    s.chain.block()  # end - 1000
    assert s.check(ticket=ticket).time == end - 1000
    s.chain.block()  # end
    assert s.refused(ticket=ticket) == "consent-expired"


# ------------------------------------------------------------------ the order
def test_the_order_of_the_checks(s: Setup) -> None:
    """When several apply, the first in REFUSAL_CODES wins."""
    # wrong-requester before consent-revoked before consent-expired
    end = s.chain.time(s.chain.height + 3)
    cid = s.chain.ok(grant(end=end))["consent_id"]
    late = s.commit(access(cid))
    s.chain.ok(tx("consent.revoke", {"consent_id": cid}, PATIENT))
    s.chain.block()  # past end
    assert s.refused(ticket=late, member="hosp-a") == "wrong-requester"
    assert s.refused(ticket=late) == "consent-revoked"
    # ticket-mismatch (another record) before wrong-requester
    cid_a = s.chain.ok(grant(grantee="hosp-a"))["consent_id"]
    a_rec2 = s.commit(access(cid_a, "rec-2", by=HOSP_A))
    assert s.refused(ticket=a_rec2) == "ticket-mismatch"
    # ticket-rejected (an insurer's access without consent) before ticket-mismatch
    rejected = s.commit(access(s.consent, "rec-2", by=INSURER))
    assert s.refused(ticket=rejected) == "ticket-rejected"
    # unknown-version before erased before no-ticket
    s.chain.ok(tx("record.erase", {"record_id": "rec-1", "reason": "legal-order"}, HOSP_A))
    assert s.refused(version_id=commitment(5), ticket=None) == "unknown-version"
    assert s.refused(ticket=None) == "erased"
