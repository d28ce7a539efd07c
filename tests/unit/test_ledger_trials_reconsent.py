"""Clinical trials: re-consent after a safety amendment. Data naming a participant on an
older consent is refused (``reconsent-required``) until they re-consent; the audit
report and ``/trials/{id}/reconsent`` list the outdated participants."""

from __future__ import annotations

from typing import Any

import pytest

from node.core.tx import build_tx
from node.ledger.executor import Ledger
from node.ledger.result import Rejection
from tests.unit.test_ledger_trials import (
    ALICE,
    BOB,
    CHAIN,
    KEYS,
    NCT,
    Chain,
    amend_body,
    enrolled,
    h,
    register_body,
    registered,
    tx,
)

CAROL = h("participant-carol")
RECONSENT = "/trials/{trial_id}/reconsent"


def consent(p: str, v: int) -> dict[str, Any]:
    return {"trial_id": NCT, "participant": p, "protocol_version": v}


def data(label: str, *participants: str) -> dict[str, Any]:
    body: dict[str, Any] = {"trial_id": NCT, "merkle_root": h(label), "record_count": 3}
    if participants:
        body["participants"] = list(participants)
    return body


def safety(label: str = "v2") -> dict[str, Any]:
    return amend_body(label, reason_code="safety", reason="new hepatotoxicity warning")


def outdated(c: Chain, **query: str) -> list[str]:
    found = c.query(RECONSENT, {"trial_id": NCT}, query)
    return [p["participant"] for p in found["participants"]]


def test_safety_amendment_refuses_data_until_reconsent() -> None:
    """After a safety amendment, data naming a participant consented to version 1 is
    reconsent-required; once they consent to version 2 the same batch is accepted."""
    c = enrolled(ALICE)
    c.ok("sponsor-1", "trial.amend", safety())
    assert c.trial()["reconsent_from"] == 2
    r = c.one(tx("hospital-1", "trial.data", data("b1", ALICE)))
    assert r.code == "reconsent-required" and "version 1" in r.message
    assert c.trial()["counts"]["data_batches"] == 0
    c.ok("hospital-1", "trial.consent", consent(ALICE, 2))
    assert c.ok("hospital-1", "trial.data", data("b1", ALICE))["seq"] == 1
    assert c.report()["data"]["commitments"][0]["participant_count"] == 1


def test_other_amendment_needs_no_reconsent_for_data() -> None:
    """A non-safety amendment leaves data of participants on the older consent acceptable,
    with or without naming them."""
    c = enrolled(ALICE)
    c.ok("sponsor-1", "trial.amend", amend_body(reason_code="eligibility"))
    assert c.trial()["reconsent_from"] is None
    assert c.ok("hospital-1", "trial.data", data("b1", ALICE))["seq"] == 1
    assert c.ok("hospital-1", "trial.data", data("b2"))["seq"] == 2
    assert c.report()["data"]["commitments"][1]["participant_count"] == 0


def test_after_safety_amendment_the_batch_must_name_its_participants() -> None:
    """Without a safety amendment a batch need not name participants; with one in force it
    must (participants-required), else the re-consent rule could be bypassed."""
    c = enrolled(ALICE)
    c.ok("hospital-1", "trial.data", data("b1"))
    c.ok("sponsor-1", "trial.amend", safety())
    c.ok("hospital-1", "trial.consent", consent(ALICE, 2))
    assert c.code("hospital-1", "trial.data", data("b2")) == "participants-required"
    c.ok("hospital-1", "trial.data", data("b2", ALICE))


def test_named_participants_must_be_the_sites_own() -> None:
    """A named pseudonym unknown to the trial is no-consent; another site's is wrong-site."""
    c = enrolled(ALICE)
    c.ok("clinic-2", "trial.consent", consent(BOB, 1))
    assert c.code("hospital-1", "trial.data", data("b1", CAROL)) == "no-consent"
    assert c.code("hospital-1", "trial.data", data("b1", ALICE, BOB)) == "wrong-site"
    c.ok("clinic-2", "trial.data", data("b1", BOB))


def test_reconsent_is_to_the_safety_version_or_later() -> None:
    """Consent to the safety version clears the participant even after a later non-safety
    amendment; a later safety amendment requires consent to its own version again."""
    c = enrolled(ALICE)
    c.ok("sponsor-1", "trial.amend", safety("v2"))
    c.ok("hospital-1", "trial.consent", consent(ALICE, 2))
    c.ok("sponsor-1", "trial.amend", amend_body("v3", reason_code="administrative"))
    assert c.trial()["reconsent_from"] == 2
    c.ok("hospital-1", "trial.data", data("b1", ALICE))
    c.ok("sponsor-1", "trial.amend", safety("v4"))
    assert c.code("hospital-1", "trial.data", data("b2", ALICE)) == "reconsent-required"
    assert outdated(c) == [ALICE]


def test_withdrawn_participant_is_not_outdated() -> None:
    """A withdrawn participant cannot re-consent: not listed, and data collected before the
    withdrawal may still name them."""
    c = enrolled(ALICE, BOB)
    c.ok("hospital-1", "trial.withdraw", {"trial_id": NCT, "participant": BOB})
    c.ok("sponsor-1", "trial.amend", safety())
    assert outdated(c) == [ALICE]
    c.ok("hospital-1", "trial.data", data("b1", BOB))


def test_report_and_query_list_outdated_participants() -> None:
    """Before a safety amendment nobody is listed; after it every participant on an older
    consent (enrolled or not) is, until they re-consent; the query pages by pseudonym."""
    c = enrolled(ALICE, BOB)
    c.ok("hospital-1", "trial.consent", consent(CAROL, 1))  # consented, not enrolled
    rep = c.report()["reconsent"]
    assert rep == {"required_from_version": None, "outdated": [], "more": False}
    assert c.query(RECONSENT, {"trial_id": NCT}) == {
        "trial_id": NCT,
        "required_from_version": None,
        "participants": [],
        "more": False,
    }
    c.ok("sponsor-1", "trial.amend", safety())
    everyone = sorted([ALICE, BOB, CAROL])
    rep = c.report()["reconsent"]
    assert rep["required_from_version"] == 2 and rep["more"] is False
    assert [p["participant"] for p in rep["outdated"]] == everyone
    first = rep["outdated"][everyone.index(ALICE)]
    assert first == {
        "participant": ALICE,
        "site": "hospital-1",
        "status": "on-study",
        "consented_version": 1,
    }
    assert outdated(c) == everyone
    page = c.query(RECONSENT, {"trial_id": NCT}, {"limit": "2"})
    assert [p["participant"] for p in page["participants"]] == everyone[:2] and page["more"]
    assert outdated(c, after=everyone[1]) == everyone[2:]
    c.ok("hospital-1", "trial.consent", consent(BOB, 2))
    assert outdated(c) == sorted([ALICE, CAROL])
    assert [p["participant"] for p in c.report()["reconsent"]["outdated"]] == sorted([ALICE, CAROL])


def test_reconsent_query_checks_its_parameters() -> None:
    """Unknown trial: None (404); a malformed cursor or limit is refused."""
    c = registered()
    assert c.query(RECONSENT, {"trial_id": "NCT99999999"}) is None
    with pytest.raises(Rejection):
        c.query(RECONSENT, {"trial_id": NCT}, {"after": "Jane"})
    with pytest.raises(Rejection):
        c.query(RECONSENT, {"trial_id": NCT}, {"limit": "0"})


@pytest.mark.parametrize(
    ("participants", "where"),
    [(["Jane Doe"], "participants[0]"), ([], "participants"), ([ALICE, ALICE], "participants")],
)
def test_data_participants_malformed(participants: list[str], where: str) -> None:
    """Named participants are distinct pseudonym commitments, at least one."""
    body = {**data("b1"), "participants": participants}
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("hospital-1", "trial.data", body))
    assert err.value.code == "malformed" and where in err.value.message


def _safety_story() -> list[Any]:
    nonce = iter(range(10_000, 20_000))

    def t(who: str, type_: str, body: dict[str, Any]) -> Any:
        return build_tx(CHAIN, type_, body, KEYS[who], next(nonce))

    return [
        t("sponsor-1", "trial.register", register_body()),
        t("hospital-1", "trial.consent", consent(ALICE, 1)),
        t("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE}),
        t("sponsor-1", "trial.amend", safety()),
        t("hospital-1", "trial.data", data("b1", ALICE)),
        t("hospital-1", "trial.consent", consent(ALICE, 2)),
        t("hospital-1", "trial.data", data("b1", ALICE)),
    ]


def test_safety_story_same_state_root() -> None:
    """Two ledgers executing the same safety story (a refusal included) reach the same root."""
    roots = []
    for _ in range(2):
        c = Chain()
        results = c.block(*_safety_story())
        assert [r.code for r in results] == [
            "ok",
            "ok",
            "ok",
            "ok",
            "reconsent-required",
            "ok",
            "ok",
        ]
        roots.append(c.root)
    assert roots[0] == roots[1]
