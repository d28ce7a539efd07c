"""Clinical trials (``trial.*``): every type valid, unauthorised, malformed and replayed;
consent before enrolment and re-consent after an amendment; every flag triggered and not."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from node.core.codec import parse_json
from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.domains import trials
from node.ledger.executor import Ledger
from node.ledger.result import Rejection, TxResult
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit, run_query

CHAIN = "test-chain"
KEYS = {
    name: key_from_seed(bytes([i + 1]) * 32)
    for i, name in enumerate(
        [
            "sponsor-1",
            "sponsor-2",
            "hospital-1",
            "clinic-2",
            "hospital-3",
            "pharmacy-4",
            "outsider",
            "ethics-1",
            "ethics-2",
        ]
    )
}
ROLES = {
    "sponsor-1": ["sponsor"],
    "sponsor-2": ["sponsor"],
    "hospital-1": ["hospital"],
    "clinic-2": ["clinic"],
    "hospital-3": ["hospital"],
    "pharmacy-4": ["pharmacy"],
    "ethics-1": ["regulator"],  # an ethics committee
    "ethics-2": ["regulator"],
}
MEMBERS = [
    {"id": m, "name": m, "roles": roles, "keys": [public_key_hex(KEYS[m])]}
    for m, roles in ROLES.items()
]
NCT = "NCT01234567"
_nonce = iter(range(1, 1 << 30))


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def outcome(oid: str, text: str | None = None) -> dict[str, str]:
    return {"id": oid, "commitment": h(text or f"desc-{oid}")}


P1, S1, S2 = outcome("P1"), outcome("S1"), outcome("S2")
ALICE, BOB = h("participant-alice"), h("participant-bob")


def tx(who: str, type_: str, body: dict[str, Any]) -> Tx:
    return build_tx(CHAIN, type_, body, KEYS[who], next(_nonce))


def register_body(trial_id: str = NCT, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "trial_id": trial_id,
        "brief_title": "Drug X versus placebo in condition Y",
        "protocol_commitment": h("protocol-v1"),
        "sap_commitment": h("sap-v1"),
        "primary_outcomes": [P1],
        "secondary_outcomes": [S1, S2],
        "sites": ["hospital-1", "clinic-2"],
    }
    body.update(over)
    return body


def amend_body(version_label: str = "v2", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "trial_id": NCT,
        "reason_code": "eligibility",
        "reason": "widen age range",
        "protocol_commitment": h(f"protocol-{version_label}"),
    }
    body.update(over)
    return body


def results_body(
    primary: list[Any] | None = None, secondary: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "trial_id": NCT,
        "primary_outcomes": [P1] if primary is None else primary,
        "secondary_outcomes": [S1, S2] if secondary is None else secondary,
        "results_commitment": h("results"),
    }


class Chain:
    """A ledger over a MemoryChainStore; each ``block`` call executes and commits one block."""

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.height = 0
        self.root = b"\0" * 32
        self.ledger = Ledger()

    def block(self, *txs: Tx) -> list[TxResult]:
        self.height += 1
        block = BlockInfo(CHAIN, self.height, 1_000 * self.height, 0)
        out = execute_and_commit(self.store, self.ledger, block, txs, self.root, MEMBERS)
        self.root = out.state_root
        return out.results

    def one(self, t: Tx) -> TxResult:
        return self.block(t)[0]

    def ok(self, who: str, type_: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.one(tx(who, type_, body))
        assert r.status == "ok", (r.code, r.message)
        return r.data

    def code(self, who: str, type_: str, body: dict[str, Any]) -> str:
        return self.one(tx(who, type_, body)).code

    def trial(self, trial_id: str = NCT) -> dict[str, Any]:
        raw = self.store.state_get(trials.trial_key(trial_id))
        assert raw is not None
        value: dict[str, Any] = parse_json(raw)
        return value

    def report(self, trial_id: str = NCT) -> dict[str, Any]:
        rep = trials.audit_report(BlockState(self.store), trial_id)
        assert rep is not None
        return rep

    def query(self, path: str, params: dict[str, str], query: dict[str, str] | None = None) -> Any:
        return run_query(trials.DOMAIN, BlockState(self.store), path, params, query)


def registered() -> Chain:
    c = Chain()
    c.ok("sponsor-1", "trial.register", register_body())
    return c


def enrolled(*participants: str) -> Chain:
    c = registered()
    for p in participants or (ALICE,):
        c.ok(
            "hospital-1",
            "trial.consent",
            {"trial_id": NCT, "participant": p, "protocol_version": 1},
        )
        c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": p})
    return c


def locked() -> Chain:
    c = enrolled()
    c.ok(
        "hospital-1",
        "trial.data",
        {"trial_id": NCT, "merkle_root": h("batch1"), "record_count": 10},
    )
    c.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    return c


def flag_codes(c: Chain) -> list[str]:
    return [f["code"] for f in c.trial()["flags"]]


# ------------------------------------------------------------------ register
def test_register_valid_records_version_1_and_indexes_the_sponsor() -> None:
    """A sponsor registers a trial: version 1, status approved, history entry, listed by sponsor."""
    c = Chain()
    data = c.ok("sponsor-1", "trial.register", register_body())
    assert data == {"trial_id": NCT, "protocol_version": 1, "sponsor": "sponsor-1"}
    t = c.trial()
    assert (t["status"], t["protocol_version"], t["sites"]) == (
        "approved",
        1,
        ["clinic-2", "hospital-1"],
    )
    listed = c.query("/trials", {}, {"sponsor": "sponsor-1"})["trials"]
    assert [x["trial_id"] for x in listed] == [NCT]
    assert c.query("/trials", {}, {"sponsor": "sponsor-2"})["trials"] == []
    assert c.report()["timeline"][0]["event"] == "registered"


@pytest.mark.parametrize(
    "trial_id", ["NCT01234567", "2022-500014-26-00", "2004-000123-12", "ISRCTN12345678"]
)
def test_register_accepts_the_documented_trial_id_patterns(trial_id: str) -> None:
    """NCT, EU CT (CTIS), EudraCT and ISRCTN numbers are accepted as trial ids."""
    Chain().ok("sponsor-1", "trial.register", register_body(trial_id))


@pytest.mark.parametrize("who", ["hospital-1", "outsider"])
def test_register_unauthorised(who: str) -> None:
    """Only a member with role sponsor may register a trial."""
    c = Chain()
    assert c.code(who, "trial.register", register_body()) == "unauthorized"
    assert c.store.state_get(trials.trial_key(NCT)) is None


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"trial_id": "NCT123"}, "body.trial_id"),
        ({"protocol_commitment": "ABC"}, "body.protocol_commitment"),
        ({"brief_title": "x" * 201}, "body.brief_title"),
        ({"brief_title": "two\nlines"}, "body.brief_title"),
        ({"primary_outcomes": []}, "body.primary_outcomes"),
        ({"primary_outcomes": [{"id": "P1"}]}, "body.primary_outcomes[0].commitment"),
        ({"patient_name": "Jane"}, "body.patient_name"),
    ],
)
def test_register_malformed_is_refused_with_its_path(over: dict[str, Any], where: str) -> None:
    """Schema errors name the field; unknown fields (a way to smuggle PHI) are refused."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("sponsor-1", "trial.register", register_body(**over)))
    assert err.value.code == "malformed" and where in err.value.message


def test_register_duplicate_outcome_id_is_malformed() -> None:
    """An outcome id used twice (here primary and secondary) is rejected at execution."""
    c = Chain()
    r = c.one(tx("sponsor-1", "trial.register", register_body(secondary_outcomes=[outcome("P1")])))
    assert r.code == "malformed" and "P1" in r.message


def test_register_replay_and_second_registration_are_rejected() -> None:
    """The same tx again is a replay; another registration of the same id is refused."""
    c = Chain()
    t = tx("sponsor-1", "trial.register", register_body())
    assert [r.code for r in c.block(t, t)] == ["ok", "replay"]
    assert c.one(t).code == "replay"
    assert c.code("sponsor-2", "trial.register", register_body()) == "already-registered"


def test_register_site_must_be_a_hospital_or_clinic_member() -> None:
    """A pharmacy or an unknown member id cannot be a trial site."""
    c = Chain()
    assert c.code("sponsor-1", "trial.register", register_body(sites=["pharmacy-4"])) == (
        "unknown-site"
    )
    assert c.code("sponsor-1", "trial.register", register_body(sites=["nobody"])) == "unknown-site"


# ------------------------------------------------------------------ amend
def test_amend_valid_keeps_history() -> None:
    """An amendment makes version 2 with its reason; version 1 stays in the history."""
    c = registered()
    data = c.ok("sponsor-1", "trial.amend", amend_body(protocol_version=2))
    assert data == {"trial_id": NCT, "protocol_version": 2, "flagged": False, "pending": False}
    t = c.trial()
    assert (t["protocol_version"], t["protocol_commitment"]) == (2, h("protocol-v2"))
    rep = c.report()
    assert [a["protocol_version"] for a in rep["amendments"]] == [2]
    assert rep["amendments"][0]["reason_code"] == "eligibility"
    assert [e["event"] for e in rep["timeline"]] == ["registered", "amended"]
    v1 = parse_json(c.store.state_get(trials.version_key(NCT, 1)) or b"null")
    assert v1["protocol_commitment"] == h("protocol-v1")


@pytest.mark.parametrize(
    ("who", "code"), [("sponsor-2", "unauthorized"), ("hospital-1", "unauthorized")]
)
def test_amend_unauthorised(who: str, code: str) -> None:
    """Another sponsor, or a site, cannot amend the trial."""
    c = registered()
    assert c.code(who, "trial.amend", amend_body()) == code
    assert c.trial()["protocol_version"] == 1


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"reason_code": "because"}, "body.reason_code"),
        ({"reason": "r" * 141}, "body.reason"),
        ({"protocol_version": 1}, "body.protocol_version"),
        ({"participant_dob": "1970-01-01"}, "body.participant_dob"),
    ],
)
def test_amend_malformed(over: dict[str, Any], where: str) -> None:
    """A bounded reason code, short reason text, versions from 2, no unknown fields."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("sponsor-1", "trial.amend", amend_body(**over)))
    assert err.value.code == "malformed" and where in err.value.message


def test_amend_replay_conflict_unchanged_and_unknown() -> None:
    """Replay, a stale version number, an unchanged protocol and an unknown trial are refused."""
    c = registered()
    t = tx("sponsor-1", "trial.amend", amend_body())
    assert c.one(t).code == "ok"
    assert c.one(t).code == "replay"
    assert c.code("sponsor-1", "trial.amend", amend_body("v3", protocol_version=2)) == (
        "version-conflict"
    )
    assert c.code("sponsor-1", "trial.amend", amend_body("v2")) == "protocol-unchanged"
    assert c.code("sponsor-1", "trial.amend", amend_body(trial_id="NCT99999999")) == (
        "unknown-trial"
    )


def test_amend_after_lock_is_refused() -> None:
    """No amendment once the database is locked."""
    c = locked()
    assert c.code("sponsor-1", "trial.amend", amend_body()) == "locked"


def test_flag_outcome_change_after_enrolment_is_recorded() -> None:
    """Changing outcomes after the first enrolment is accepted but flagged, with the diff."""
    c = enrolled()
    data = c.ok(
        "sponsor-1",
        "trial.amend",
        amend_body(reason_code="outcome-change", primary_outcomes=[outcome("P1", "new")]),
    )
    assert data["flagged"] is True
    (flag,) = c.trial()["flags"]
    assert flag["code"] == "outcomes-changed-after-enrolment"
    assert (flag["changed"], flag["added"], flag["removed"]) == (["P1"], [], [])
    assert c.report()["outcomes_changed_after_enrolment"] is True


def test_no_flag_for_outcome_change_before_enrolment() -> None:
    """Changing outcomes before any enrolment is an ordinary amendment: no flag."""
    c = registered()
    c.ok("sponsor-1", "trial.amend", amend_body(secondary_outcomes=[S1]))
    c.ok(
        "hospital-1",
        "trial.consent",
        {"trial_id": NCT, "participant": ALICE, "protocol_version": 2},
    )
    c.ok("hospital-1", "trial.enroll", {"trial_id": NCT, "participant": ALICE})
    assert flag_codes(c) == []


def test_no_flag_for_amendment_after_enrolment_without_outcome_change() -> None:
    """An amendment after enrolment that leaves the outcomes as they were is not flagged."""
    c = enrolled()
    c.ok("sponsor-1", "trial.amend", amend_body(primary_outcomes=[P1], secondary_outcomes=[S2, S1]))
    assert flag_codes(c) == []


# ------------------------------------------------------------------ consent / enroll / withdraw
def consent(p: str = ALICE, v: int = 1) -> dict[str, Any]:
    return {"trial_id": NCT, "participant": p, "protocol_version": v}


def enroll(p: str = ALICE) -> dict[str, Any]:
    return {"trial_id": NCT, "participant": p}


def test_consent_valid_counts_and_queryable() -> None:
    """A site records consent; the participant is pending-on-study at that site."""
    c = registered()
    c.ok("clinic-2", "trial.consent", consent())
    subj = c.query(
        "/trials/{trial_id}/participants/{participant}", {"trial_id": NCT, "participant": ALICE}
    )
    assert (subj["status"], subj["site"], subj["consented_version"]) == (
        "pending-on-study",
        "clinic-2",
        1,
    )
    assert c.trial()["counts"]["consents"] == 1


@pytest.mark.parametrize("who", ["hospital-3", "pharmacy-4", "sponsor-1", "outsider"])
@pytest.mark.parametrize("type_", ["trial.consent", "trial.enroll", "trial.withdraw"])
def test_site_actions_unauthorised(who: str, type_: str) -> None:
    """Only a hospital or clinic listed as a site of the trial may consent, enrol or withdraw."""
    c = registered()
    c.ok("hospital-1", "trial.consent", consent())
    body = consent() if type_ == "trial.consent" else enroll()
    assert c.code(who, type_, body) == "unauthorized"


@pytest.mark.parametrize(
    ("type_", "body", "where"),
    [
        (
            "trial.consent",
            {"trial_id": NCT, "participant": "Jane Doe", "protocol_version": 1},
            "participant",
        ),
        (
            "trial.consent",
            {"trial_id": NCT, "participant": ALICE, "protocol_version": 0},
            "protocol_version",
        ),
        ("trial.consent", {"trial_id": NCT, "participant": ALICE}, "protocol_version"),
        ("trial.enroll", {"trial_id": NCT, "participant": ALICE.upper()}, "participant"),
        ("trial.enroll", {"trial_id": NCT, "participant": ALICE, "arm": "A"}, "arm"),
        (
            "trial.withdraw",
            {"trial_id": NCT, "participant": ALICE, "reason_code": "x"},
            "reason_code",
        ),
        ("trial.withdraw", {"participant": ALICE}, "trial_id"),
    ],
)
def test_site_actions_malformed(type_: str, body: dict[str, Any], where: str) -> None:
    """Participants are pseudonym commitments (64 lowercase hex); versions from 1; codes bounded."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("hospital-1", type_, body))
    assert err.value.code == "malformed" and where in err.value.message


def test_site_actions_replay() -> None:
    """Consent, enrol and withdraw transactions replayed are rejected as replays."""
    c = registered()
    for t in (
        tx("hospital-1", "trial.consent", consent()),
        tx("hospital-1", "trial.enroll", enroll()),
        tx("hospital-1", "trial.withdraw", enroll()),
    ):
        assert c.one(t).code == "ok"
        assert c.one(t).code == "replay"


def test_consent_rules() -> None:
    """Unknown version, same version twice, another site and an unknown trial are refused."""
    c = registered()
    assert c.code("hospital-1", "trial.consent", consent(v=2)) == "unknown-version"
    c.ok("hospital-1", "trial.consent", consent())
    assert c.code("hospital-1", "trial.consent", consent()) == "already-consented"
    assert c.code("clinic-2", "trial.consent", consent()) == "wrong-site"
    assert c.code("hospital-1", "trial.consent", {**consent(), "trial_id": "NCT99999999"}) == (
        "unknown-trial"
    )


def test_enroll_needs_consent_and_first_enrolment_freezes_prespecified_outcomes() -> None:
    """No consent, no enrolment; the first enrolment activates the trial and records the
    outcomes in force as the pre-specified ones; enrolling twice is refused."""
    c = registered()
    assert c.code("hospital-1", "trial.enroll", enroll()) == "no-consent"
    c.ok("hospital-1", "trial.consent", consent())
    assert c.ok("hospital-1", "trial.enroll", enroll())["first_enrolment"] is True
    t = c.trial()
    assert t["status"] == "active"
    assert t["prespecified"] == {
        "protocol_version": 1,
        "primary_outcomes": [P1],
        "secondary_outcomes": [S1, S2],
    }
    assert c.code("hospital-1", "trial.enroll", enroll()) == "already-enrolled"
    c.ok("hospital-1", "trial.consent", consent(BOB))
    assert c.ok("hospital-1", "trial.enroll", enroll(BOB))["first_enrolment"] is False
    assert c.trial()["counts"]["enrolments"] == 2


def test_reconsent_needed_after_amendment() -> None:
    """After an amendment, consent to the old version no longer allows enrolment;
    re-consent to the current version does."""
    c = registered()
    c.ok("hospital-1", "trial.consent", consent())
    c.ok("sponsor-1", "trial.amend", amend_body())
    assert c.code("hospital-1", "trial.enroll", enroll()) == "consent-outdated"
    c.ok("hospital-1", "trial.consent", consent(v=2))
    c.ok("hospital-1", "trial.enroll", enroll())
    subj = c.query(
        "/trials/{trial_id}/participants/{participant}", {"trial_id": NCT, "participant": ALICE}
    )
    assert [x["protocol_version"] for x in subj["consents"]] == [1, 2]
    assert c.trial()["counts"]["consents"] == 2 and c.trial()["counts"]["participants"] == 1


def test_withdrawal_is_final() -> None:
    """A withdrawn participant cannot consent again nor be enrolled; withdrawing twice fails."""
    c = registered()
    assert c.code("hospital-1", "trial.withdraw", enroll()) == "no-consent"
    c.ok("hospital-1", "trial.consent", consent())
    c.ok("hospital-1", "trial.withdraw", {**enroll(), "reason_code": "adverse-event"})
    assert c.code("hospital-1", "trial.enroll", enroll()) == "withdrawn"
    c.ok("sponsor-1", "trial.amend", amend_body())
    assert c.code("hospital-1", "trial.consent", consent(v=2)) == "withdrawn"
    assert c.code("hospital-1", "trial.withdraw", enroll()) == "already-withdrawn"
    assert c.trial()["counts"]["withdrawals"] == 1


def test_site_added_by_amendment_may_act() -> None:
    """The sponsor adds a site in an amendment; it may then record consent."""
    c = registered()
    assert c.code("hospital-3", "trial.consent", consent()) == "unauthorized"
    c.ok(
        "sponsor-1",
        "trial.amend",
        amend_body(reason_code="sites", sites=["hospital-1", "hospital-3"]),
    )
    c.ok("hospital-3", "trial.consent", consent(v=2))


def test_no_consent_or_enrolment_after_lock() -> None:
    """After the database lock there are no new consents or enrolments."""
    c = locked()
    assert c.code("hospital-1", "trial.consent", consent(BOB)) == "locked"
    assert c.code("hospital-1", "trial.enroll", enroll(BOB)) == "locked"


# ------------------------------------------------------------------ data
def data(label: str = "b1", count: int = 5) -> dict[str, Any]:
    return {"trial_id": NCT, "merkle_root": h(label), "record_count": count}


def test_data_valid_is_sequenced_and_reported() -> None:
    """Data batches get sequence numbers; the report lists them and totals the records."""
    c = enrolled()
    assert c.ok("hospital-1", "trial.data", data("b1", 5))["seq"] == 1
    assert c.ok("clinic-2", "trial.data", data("b2", 7))["seq"] == 2
    rep = c.report()
    assert (rep["data"]["batches"], rep["data"]["records"]) == (2, 12)
    assert [b["merkle_root"] for b in rep["data"]["commitments"]] == [h("b1"), h("b2")]
    page = trials.audit_report(BlockState(c.store), NCT, data_limit=1, data_after=1)
    assert page is not None and [b["seq"] for b in page["data"]["commitments"]] == [2]


@pytest.mark.parametrize("who", ["hospital-3", "sponsor-1", "outsider"])
def test_data_unauthorised(who: str) -> None:
    """Only a site of the trial may commit data batches."""
    assert enrolled().code(who, "trial.data", data()) == "unauthorized"


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"record_count": 0}, "record_count"),
        ({"merkle_root": "00"}, "merkle_root"),
        ({"rows": []}, "rows"),
    ],
)
def test_data_malformed(over: dict[str, Any], where: str) -> None:
    """A data batch is a Merkle root and a positive count, nothing else."""
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("hospital-1", "trial.data", {**data(), **over}))
    assert err.value.code == "malformed" and where in err.value.message


def test_data_replay_duplicate_before_enrolment_and_after_lock() -> None:
    """Replays, the same root twice, data before any enrolment and after the lock are refused."""
    c = registered()
    assert c.code("hospital-1", "trial.data", data()) == "no-enrolment"
    c.ok("hospital-1", "trial.consent", consent())
    c.ok("hospital-1", "trial.enroll", enroll())
    t = tx("hospital-1", "trial.data", data())
    assert c.one(t).code == "ok" and c.one(t).code == "replay"
    assert c.code("clinic-2", "trial.data", data()) == "duplicate-batch"
    c.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    assert c.code("hospital-1", "trial.data", data("b9")) == "locked"


# ------------------------------------------------------------------ lock
def test_lock_valid_unauthorised_malformed_replay() -> None:
    """The sponsor locks once; others cannot; the body is a commitment; replays are refused."""
    c = enrolled()
    body = {"trial_id": NCT, "lock_commitment": h("lock")}
    assert c.code("sponsor-2", "trial.lock", body) == "unauthorized"
    assert c.code("hospital-1", "trial.lock", body) == "unauthorized"
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("sponsor-1", "trial.lock", {**body, "lock_commitment": "x"}))
    assert err.value.code == "malformed"
    t = tx("sponsor-1", "trial.lock", body)
    assert c.one(t).code == "ok" and c.one(t).code == "replay"
    assert c.trial()["status"] == "closed-to-accrual-and-intervention"
    assert c.code("sponsor-1", "trial.lock", {**body, "lock_commitment": h("lock2")}) == (
        "already-locked"
    )


# ------------------------------------------------------------------ results
def test_results_valid_matching_outcomes_raise_no_flag() -> None:
    """Results reporting exactly the pre-specified outcomes (any order) are not flagged."""
    c = locked()
    data_ = c.ok("sponsor-1", "trial.results", results_body(secondary=[S2, S1]))
    assert data_ == {"trial_id": NCT, "outcome_switching": False, "flags": []}
    t = c.trial()
    assert (t["status"], t["flags"]) == ("completed", [])
    assert t["results"]["results_commitment"] == h("results")
    assert [e["event"] for e in c.report()["timeline"]] == [
        "registered",
        "first-enrolment",
        "locked",
        "results",
    ]


def test_results_unauthorised_malformed_replay_and_order() -> None:
    """Only the sponsor; well-formed; after the lock; once; replays refused."""
    c = enrolled()
    assert c.code("sponsor-1", "trial.results", results_body()) == "not-locked"
    c.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    assert c.code("sponsor-2", "trial.results", results_body()) == "unauthorized"
    assert c.code("clinic-2", "trial.results", results_body()) == "unauthorized"
    with pytest.raises(Rejection) as err:
        Ledger().check_tx(tx("sponsor-1", "trial.results", {**results_body(), "p_value": 5}))
    assert err.value.code == "malformed" and "p_value" in err.value.message
    t = tx("sponsor-1", "trial.results", results_body())
    assert c.one(t).code == "ok" and c.one(t).code == "replay"
    assert c.code(
        "sponsor-1", "trial.results", {**results_body(), "results_commitment": h("r2")}
    ) == ("already-reported")


@pytest.mark.parametrize(
    ("primary", "secondary", "expect"),
    [
        ([P1], [S1], [("outcome-missing", "S2")]),
        ([P1], [S1, S2, outcome("S3")], [("outcome-added", "S3")]),
        ([outcome("P1", "other")], [S1, S2], [("outcome-changed", "P1")]),
        ([P1, S1], [S2], [("outcome-changed", "S1")]),
        ([S1], [P1, S2], [("outcome-changed", "P1"), ("outcome-changed", "S1")]),
    ],
    ids=["missing", "added", "changed-description", "promoted", "swapped"],
)
def test_results_flags_outcome_switching(
    primary: list[Any], secondary: list[Any], expect: list[tuple[str, str]]
) -> None:
    """Missing, added and changed outcomes (other commitment or other category) are flagged."""
    c = locked()
    out = c.ok("sponsor-1", "trial.results", results_body(primary, secondary))
    assert out["outcome_switching"] is True
    assert [(f["code"], f["outcome_id"]) for f in c.trial()["flags"]] == expect
    assert c.report()["outcome_switching"] is True


def test_results_compare_with_prespecified_not_with_later_amendments() -> None:
    """Outcomes changed after the first enrolment do not become the reference: results that
    match the amended outcomes are flagged, results that match the pre-specified ones are not."""
    switched = enrolled()
    switched.ok("sponsor-1", "trial.amend", amend_body(secondary_outcomes=[S1, outcome("S3")]))
    switched.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    switched.ok("sponsor-1", "trial.results", results_body(secondary=[S1, outcome("S3")]))
    assert [(f["code"], f.get("outcome_id")) for f in switched.trial()["flags"]] == [
        ("outcomes-changed-after-enrolment", None),
        ("outcome-missing", "S2"),
        ("outcome-added", "S3"),
    ]
    honest = enrolled()
    honest.ok("sponsor-1", "trial.amend", amend_body(secondary_outcomes=[S1, outcome("S3")]))
    honest.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    assert honest.ok("sponsor-1", "trial.results", results_body())["flags"] == []
    assert honest.trial()["results"]["compared_with_version"] == 1


def test_results_reference_is_last_amendment_before_first_enrolment() -> None:
    """Outcomes amended before the first enrolment are the pre-specified ones: no flag."""
    c = registered()
    c.ok("sponsor-1", "trial.amend", amend_body(secondary_outcomes=[S1]))
    c.ok("hospital-1", "trial.consent", consent(v=2))
    c.ok("hospital-1", "trial.enroll", enroll())
    c.ok("sponsor-1", "trial.lock", {"trial_id": NCT, "lock_commitment": h("lock")})
    assert c.ok("sponsor-1", "trial.results", results_body(secondary=[S1]))["flags"] == []
    assert c.trial()["results"]["compared_with_version"] == 2


# ------------------------------------------------------------------ queries and determinism
def test_queries_answer_none_for_unknown_and_refuse_bad_ids() -> None:
    """Unknown trials are 404 (None); malformed ids and parameters are refused."""
    c = registered()
    assert c.query("/trials/{trial_id}", {"trial_id": "NCT99999999"}) is None
    assert c.query("/trials/{trial_id}/report", {"trial_id": "NCT99999999"}) is None
    with pytest.raises(Rejection):
        c.query("/trials/{trial_id}", {"trial_id": "../x"})
    with pytest.raises(Rejection):
        c.query("/trials", {}, {"limit": "-1"})
    assert (
        c.query("/trials/{trial_id}/report", {"trial_id": NCT}, {"data_limit": "5"})["trial_id"]
        == NCT
    )
    assert [t["trial_id"] for t in c.query("/trials", {})["trials"]] == [NCT]


def test_same_story_same_state_root() -> None:
    """Two ledgers executing the same trial story reach the same state root."""
    roots = []
    for _ in range(2):
        c = Chain()
        txs = [
            build_tx(CHAIN, "trial.register", register_body(), KEYS["sponsor-1"], 1),
            build_tx(CHAIN, "trial.consent", consent(), KEYS["hospital-1"], 2),
            build_tx(CHAIN, "trial.enroll", enroll(), KEYS["hospital-1"], 3),
            build_tx(CHAIN, "trial.data", data(), KEYS["hospital-1"], 4),
        ]
        c.block(*txs)
        roots.append(c.root)
    assert roots[0] == roots[1]


def test_apply_bench_runs_every_type_without_rejections() -> None:
    """The apply-throughput bench exercises every trial.* type and none is rejected."""
    from node.bench import apply_trials

    out = apply_trials.run(20)
    names = {t.name for t in trials.DOMAIN.tx_types}
    assert set(out["per_type"]) == names
    assert all(v["not_accepted"] == 0 and v["txs"] == 20 for v in out["per_type"].values())
