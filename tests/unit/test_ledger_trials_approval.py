"""Clinical trials: ethics approval of amendments. A trial registered with an ethics
committee keeps every amendment pending, the old protocol version in force, until the
committee's ``trial.approve`` approves it (it then takes effect) or rejects it."""

from __future__ import annotations

from typing import Any

import pytest

from node.ledger.domains import trials
from node.ledger.executor import Ledger
from node.ledger.result import Rejection
from tests.unit.test_ledger_trials import (
    ALICE,
    NCT,
    P1,
    Chain,
    amend_body,
    h,
    outcome,
    register_body,
    registered,
    tx,
)


def with_committee(committee: str = "ethics-1") -> Chain:
    c = Chain()
    c.ok("sponsor-1", "trial.register", register_body(ethics_committee=committee))
    return c


def approve(version: int = 2, decision: str = "approved", **over: Any) -> dict[str, Any]:
    return {"trial_id": NCT, "protocol_version": version, "decision": decision, **over}


def consent(v: int, p: str = ALICE) -> dict[str, Any]:
    return {"trial_id": NCT, "participant": p, "protocol_version": v}


def events(c: Chain) -> list[str]:
    return [e["event"] for e in c.report()["timeline"]]


def test_register_names_a_regulator_as_ethics_committee() -> None:
    """The committee must be an active member with role regulator (unknown-committee)."""
    assert with_committee().trial()["ethics_committee"] == "ethics-1"
    for who in ("hospital-1", "nobody"):
        c = Chain()
        body = register_body(ethics_committee=who)
        assert c.code("sponsor-1", "trial.register", body) == "unknown-committee"


def test_without_committee_amendments_take_effect_at_once() -> None:
    """No committee: the amendment is in force at once (pending false), no decision kept."""
    c = registered()
    assert c.ok("sponsor-1", "trial.amend", amend_body())["pending"] is False
    t = c.trial()
    assert (t["protocol_version"], t["pending_amendment"], t["ethics_committee"]) == (2, None, None)
    v2 = c.report()["amendments"][0]
    assert v2["approval"] is None and v2["submitted"]["tx"] == v2["tx"]


def test_amendment_is_pending_and_old_version_stays_in_force() -> None:
    """With a committee the amendment is pending: version 1 stays in force (consent to 2 is
    unknown-version, consent to 1 enrols), no second amendment may be submitted."""
    c = with_committee()
    data = c.ok("sponsor-1", "trial.amend", amend_body())
    assert data == {"trial_id": NCT, "protocol_version": 2, "flagged": False, "pending": True}
    t = c.trial()
    assert (t["protocol_version"], t["protocol_commitment"]) == (1, h("protocol-v1"))
    assert t["pending_amendment"]["protocol_version"] == 2
    assert c.code("hospital-1", "trial.consent", consent(2)) == "unknown-version"
    c.ok("hospital-1", "trial.consent", consent(1))
    c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE})
    assert c.code("sponsor-1", "trial.amend", amend_body("v3")) == "amendment-pending"
    rep = c.report()
    assert rep["amendments"] == [] and rep["pending_amendment"]["reason_code"] == "eligibility"
    assert events(c) == ["registered", "amendment-submitted", "first-enrolment"]


def test_approval_makes_the_amendment_take_effect() -> None:
    """The committee's approval puts version 2 in force at the approval's transaction; the
    history entry keeps when it was submitted and who approved it."""
    c = with_committee()
    amend = tx("sponsor-1", "trial.amend", amend_body())
    assert c.one(amend).status == "ok"
    c.ok("hospital-1", "trial.consent", consent(1))
    ok = tx("ethics-1", "trial.approve", approve())
    r = c.one(ok)
    assert r.status == "ok" and r.data == {
        "trial_id": NCT,
        "protocol_version": 2,
        "decision": "approved",
        "flagged": False,
    }
    t = c.trial()
    assert (t["protocol_version"], t["pending_amendment"]) == (2, None)
    (v2,) = c.report()["amendments"]
    assert (v2["tx"], v2["submitted"]["tx"]) == (ok.hash, amend.hash)
    assert v2["approval"] == {"committee": "ethics-1", "decision": "approved"}
    assert events(c) == ["registered", "amendment-submitted", "amended"]
    assert c.report()["timeline"][2]["approved_by"] == "ethics-1"
    assert c.code("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE}) == (
        "consent-outdated"
    )
    c.ok("hospital-1", "trial.consent", consent(2))
    assert c.ok("sponsor-1", "trial.amend", amend_body("v3"))["pending"] is True


def test_rejection_discards_the_amendment() -> None:
    """A rejected amendment never takes effect; the next amendment reuses its number."""
    c = with_committee()
    c.ok("sponsor-1", "trial.amend", amend_body())
    assert c.ok("ethics-1", "trial.approve", approve(decision="rejected"))["decision"] == (
        "rejected"
    )
    t = c.trial()
    assert (t["protocol_version"], t["pending_amendment"]) == (1, None)
    (decision,) = t["amendment_decisions"]
    assert (decision["decision"], decision["committee"]) == ("rejected", "ethics-1")
    assert events(c) == ["registered", "amendment-submitted", "amendment-rejected"]
    assert c.ok("sponsor-1", "trial.amend", amend_body("v2b"))["protocol_version"] == 2
    assert c.report()["amendments"] == []


@pytest.mark.parametrize("who", ["ethics-2", "sponsor-1", "hospital-1", "outsider"])
def test_only_the_trials_committee_decides(who: str) -> None:
    """Another regulator, the sponsor, a site or a non-member cannot approve."""
    c = with_committee()
    c.ok("sponsor-1", "trial.amend", amend_body())
    assert c.code(who, "trial.approve", approve()) == "unauthorized"
    assert c.trial()["pending_amendment"] is not None


def test_approve_rejections() -> None:
    """A trial without committee is unauthorized; nothing pending or another version is
    no-pending-amendment; an unknown trial; replay; after the lock."""
    plain = registered()
    plain.ok("sponsor-1", "trial.amend", amend_body())
    assert plain.code("ethics-1", "trial.approve", approve(3)) == "unauthorized"
    c = with_committee()
    assert c.code("ethics-1", "trial.approve", approve()) == "no-pending-amendment"
    assert c.code("ethics-1", "trial.approve", approve(trial_id="NCT99999999")) == ("unknown-trial")
    c.ok("sponsor-1", "trial.amend", amend_body())
    assert c.code("ethics-1", "trial.approve", approve(3)) == "no-pending-amendment"
    t = tx("ethics-1", "trial.approve", approve())
    assert c.one(t).status == "ok" and c.one(t).code == "replay"
    c.ok("sponsor-1", "trial.amend", amend_body("v3"))
    c.ok("hospital-1", "trial.consent", consent(2))
    c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE})
    c.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    assert c.code("ethics-1", "trial.approve", approve(3)) == "locked"
    assert c.trial()["protocol_version"] == 2


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"decision": "maybe"}, "body.decision"),
        ({"protocol_version": 1}, "body.protocol_version"),
        ({"note": "ok"}, "body.note"),
    ],
)
def test_approve_malformed(over: dict[str, Any], where: str) -> None:
    """A bounded decision code, versions from 2, no unknown fields."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("ethics-1", "trial.approve", approve(**over)))
    assert err.value.code == "malformed" and where in err.value.message


def test_pending_safety_amendment_requires_reconsent_only_once_approved() -> None:
    """A pending safety amendment changes nothing; its approval starts the re-consent rule."""
    c = with_committee()
    c.ok("hospital-1", "trial.consent", consent(1))
    c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE})
    c.ok("sponsor-1", "trial.amend", amend_body(reason_code="safety", reason="new risk"))
    batch = {"trial_id": NCT, "merkle_root": h("b1"), "record_count": 1, "participants": [ALICE]}
    c.ok("hospital-1", "trial.data", batch)
    assert c.trial()["reconsent_from"] is None
    c.ok("ethics-1", "trial.approve", approve())
    assert c.trial()["reconsent_from"] == 2
    assert c.code("hospital-1", "trial.data", {**batch, "merkle_root": h("b2")}) == (
        "reconsent-required"
    )


def test_outcome_change_is_judged_when_the_amendment_takes_effect() -> None:
    """Submitted before the first enrolment, approved after it: the outcomes frozen at the
    enrolment are version 1's, and the approval raises the outcome-change flag."""
    c = with_committee()
    c.ok("sponsor-1", "trial.amend", amend_body(primary_outcomes=[outcome("P1", "new")]))
    c.ok("hospital-1", "trial.consent", consent(1))
    c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE})
    assert c.trial()["prespecified"]["primary_outcomes"] == [P1]
    assert c.ok("ethics-1", "trial.approve", approve())["flagged"] is True
    assert [f["code"] for f in c.trial()["flags"]] == ["outcomes-changed-after-enrolment"]


def test_rejected_amendments_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most MAX_REJECTED rejected amendments per trial (too-many-versions)."""
    monkeypatch.setattr(trials, "MAX_REJECTED", 2)
    c = with_committee()
    for label in ("a", "b"):
        c.ok("sponsor-1", "trial.amend", amend_body(label))
        c.ok("ethics-1", "trial.approve", approve(decision="rejected"))
    assert c.code("sponsor-1", "trial.amend", amend_body("c")) == "too-many-versions"
