"""Who may read what: the client API serves a patient-scoped query (``Query.scope``)
only to a signed request by the patient key or an entitled active member
(docs/privacy.md), over a real ledger's committed state; public queries stay open."""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from node.api import views
from node.api.client import client_app
from node.api.openapi import openapi_document
from node.core.keys import SigningKey, key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.exchange.signed_request import sign_request
from node.ledger.context import BlockInfo
from node.ledger.domain import PatientScope, QueryFn
from node.ledger.domains import DOMAINS
from node.ledger.executor import Ledger
from node.ledger.members import put_member
from node.ledger.state import BlockState
from storage.memory import MemoryChainStore
from tests.unit.ledger_helpers import execute_and_commit

CHAIN = "test-chain"
T0 = 1_740_787_200_000  # 2025-03-01T00:00:00Z
NOW = T0 + 10_000  # the node's clock in these tests
NCT = "NCT01234567"
NAMES = ["hosp-a", "clinic-b", "ins-c", "ins-d", "aud-e", "reg-f", "spon-g", "outsider"]
KEYS = {name: key_from_seed(bytes([i + 1]) * 32) for i, name in enumerate(NAMES)}
ROLES = {
    "hosp-a": "hospital",
    "clinic-b": "clinic",
    "ins-c": "insurer",
    "ins-d": "insurer",
    "aud-e": "auditor",
    "reg-f": "regulator",
    "spon-g": "sponsor",
}
MEMBERS = [
    {"id": m, "name": m, "roles": [role], "keys": [public_key_hex(KEYS[m])]}
    for m, role in ROLES.items()
]
PATIENT_KEY = key_from_seed(b"\x51" * 32)
PARTICIPANT_KEY = key_from_seed(b"\x52" * 32)  # a participant whose pseudonym is their key
P = public_key_hex(PATIENT_KEY)
PARTICIPANT = public_key_hex(PARTICIPANT_KEY)
_nonce = itertools.count(1)

CONSENTS = f"/v1/ehr/patients/{P}/consents"
DISCLOSURES = f"/v1/ehr/patients/{P}/disclosures"
ENROLMENT = f"/v1/ehr/patients/{P}"
COVERAGE = f"/v1/coverage/ins-c/{P}"
PARTICIPATION = f"/v1/trials/{NCT}/participants/{PARTICIPANT}"


def _tx(key: SigningKey, tx_type: str, body: dict[str, Any]) -> Tx:
    return build_tx(CHAIN, tx_type, body, key, next(_nonce))


def _outcome(oid: str) -> dict[str, str]:
    return {"id": oid, "commitment": hashlib.sha256(oid.encode()).hexdigest()}


class ChainNode:
    """The one facade method the queries call, over a memory store with committed blocks."""

    documents = None  # no document routes

    def __init__(self) -> None:
        self.store = MemoryChainStore()
        self.root = b"\0" * 32
        self.height = 0
        self.ledger = Ledger()

    def block(self, *txs: Tx) -> None:
        self.height += 1
        info = BlockInfo(CHAIN, self.height, T0 + 1000 * self.height, 0)
        out = execute_and_commit(self.store, self.ledger, info, txs, self.root, MEMBERS)
        assert all(r.status == "ok" for r in out.results), [r.message for r in out.results]
        self.root = out.state_root

    def run_query(self, fn: QueryFn, path: Any, query: Any) -> Any:
        return views.run_query(self.store, fn, path, query)


@pytest.fixture(scope="module")
def node() -> ChainNode:
    n = ChainNode()
    policy = {"policy_id": "gold", "currency": "EUR", "services": [{"code": "99213", "allowed": 1}]}
    register = {
        "trial_id": NCT,
        "brief_title": "Drug X versus placebo",
        "protocol_commitment": "ab" * 32,
        "sap_commitment": "cd" * 32,
        "primary_outcomes": [_outcome("P1")],
        "sites": ["hosp-a"],
        "ethics_committee": "reg-f",
    }
    n.block(
        _tx(KEYS["hosp-a"], "patient.enroll", {"patient": P}),
        _tx(KEYS["ins-c"], "policy.publish", policy),
        _tx(KEYS["spon-g"], "trial.register", register),
    )
    grant = {
        "grantee": "clinic-b",
        "scope": "all",
        "purpose": ["TREAT"],
        "period": {"start": 0, "end": 10**13},
    }
    coverage = {
        "coverage_id": "cov-1",
        "patient": P,
        "policy_id": "gold",
        "start": "2025-01-01",
        "end": "2025-12-31",
    }
    consent = {"trial_id": NCT, "participant": PARTICIPANT, "protocol_version": 1}
    n.block(
        _tx(PATIENT_KEY, "consent.grant", grant),
        _tx(KEYS["ins-c"], "coverage.enroll", coverage),
        _tx(KEYS["hosp-a"], "trial.consent", consent),
    )
    return n


def _signed(key: SigningKey, path: str, when: int = NOW) -> dict[str, str]:
    return sign_request(key, "GET", path, None, when)


async def _get(
    node: ChainNode, path: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with TestClient(TestServer(client_app(node, clock_ms=lambda: NOW))) as client:  # type: ignore[arg-type]
        r = await client.get(path, headers=headers)
        return r.status, await r.json()


async def _as(node: ChainNode, who: str, path: str) -> tuple[int, Any]:
    key = {"patient": PATIENT_KEY, "participant": PARTICIPANT_KEY}.get(who) or KEYS[who]
    return await _get(node, path, _signed(key, path))


def _code(answer: Any) -> str:
    return str(answer["error"]["code"])


def test_the_patient_scoped_queries_are_these() -> None:
    """The decision of docs/privacy.md: these queries, keyed by a patient key (or a
    participant pseudonym), are scoped; every other query is public."""
    scoped = {q.path: q.scope.param for d in DOMAINS for q in d.queries if q.scope is not None}
    assert scoped == {
        "/ehr/patients/{key}": "key",
        "/ehr/patients/{key}/consents": "key",
        "/ehr/patients/{key}/disclosures": "key",
        "/coverage/{insurer}/{patient}": "patient",
        "/trials/{trial_id}/participants/{participant}": "participant",
    }


@pytest.mark.parametrize("path", [ENROLMENT, CONSENTS, DISCLOSURES, COVERAGE, PARTICIPATION])
async def test_unsigned_read_of_a_patients_data_is_401(node: ChainNode, path: str) -> None:
    status, answer = await _get(node, path)
    assert (status, _code(answer)) == (401, "signature-required")
    assert "X-Hygeia-Signature" in answer["error"]["message"]


@pytest.mark.parametrize("path", [ENROLMENT, CONSENTS, DISCLOSURES, COVERAGE])
async def test_the_patient_reads_its_own_data(node: ChainNode, path: str) -> None:
    status, answer = await _as(node, "patient", path)
    assert status == 200, answer


async def test_the_answers_are_the_queries(node: ChainNode) -> None:
    """A signed, entitled read gets the query's own answer."""
    _, consents = await _as(node, "patient", CONSENTS)
    assert consents["patient"] == P and [c["grantee"] for c in consents["consents"]] == ["clinic-b"]
    _, coverage = await _as(node, "ins-c", COVERAGE)
    assert [c["coverage_id"] for c in coverage["coverages"]] == ["cov-1"]
    _, subject = await _as(node, "spon-g", PARTICIPATION)
    assert (subject["participant"], subject["site"]) == (PARTICIPANT, "hosp-a")


# (path, who may read besides the patient, who may not)
ENTITLEMENTS = [
    (ENROLMENT, ["hosp-a", "clinic-b", "aud-e", "reg-f"], ["ins-c", "spon-g", "outsider"]),
    (CONSENTS, ["hosp-a", "aud-e", "reg-f"], ["clinic-b", "ins-c", "spon-g", "outsider"]),
    (DISCLOSURES, ["hosp-a", "aud-e", "reg-f"], ["clinic-b", "ins-c", "outsider"]),
    (COVERAGE, ["ins-c"], ["ins-d", "hosp-a", "aud-e", "outsider"]),
    (PARTICIPATION, ["spon-g", "reg-f", "hosp-a", "participant"], ["clinic-b", "aud-e", "patient"]),
]


@pytest.mark.parametrize(("path", "entitled", "others"), ENTITLEMENTS)
async def test_entitled_members_read_and_others_get_403(
    node: ChainNode, path: str, entitled: list[str], others: list[str]
) -> None:
    for who in entitled:
        status, answer = await _as(node, who, path)
        assert status == 200, (who, answer)
    for who in others:
        status, answer = await _as(node, who, path)
        assert (status, _code(answer)) == (403, "not-entitled"), who


async def test_a_replayed_signature_is_401(node: ChainNode) -> None:
    headers = _signed(PATIENT_KEY, CONSENTS)
    async with TestClient(TestServer(client_app(node, clock_ms=lambda: NOW))) as client:  # type: ignore[arg-type]
        first = await client.get(CONSENTS, headers=headers)
        again = await client.get(CONSENTS, headers=headers)
        assert first.status == 200
        assert (again.status, _code(await again.json())) == (401, "replayed")


@pytest.mark.parametrize(("offset", "status"), [(-60_001, 401), (60_001, 401), (-60_000, 200)])
async def test_a_time_over_60_s_from_the_nodes_clock_is_401(
    node: ChainNode, offset: int, status: int
) -> None:
    got, answer = await _get(node, CONSENTS, _signed(PATIENT_KEY, CONSENTS, NOW + offset))
    assert got == status, answer
    if status == 401:
        assert _code(answer) == "stale"


async def test_a_signature_of_another_path_or_a_half_signed_request_is_401(
    node: ChainNode,
) -> None:
    """The query string is signed too; a request with some headers is a bad signature."""
    status, answer = await _get(node, CONSENTS + "?limit=5", _signed(PATIENT_KEY, CONSENTS))
    assert (status, _code(answer)) == (401, "bad-signature")
    headers = _signed(PATIENT_KEY, CONSENTS)
    del headers["X-Hygeia-Signature"]
    status, answer = await _get(node, CONSENTS, headers)
    assert (status, _code(answer)) == (401, "bad-signature")
    path = CONSENTS + "?limit=5"
    status, answer = await _get(node, path, _signed(PATIENT_KEY, path))
    assert status == 200, answer


async def test_unknown_patient_is_404_to_its_key_and_403_to_others(node: ChainNode) -> None:
    stranger = key_from_seed(b"\x53" * 32)
    path = f"/v1/ehr/patients/{public_key_hex(stranger)}/consents"
    status, _ = await _get(node, path, _signed(stranger, path))
    assert status == 404
    status, _ = await _get(node, path, _signed(KEYS["aud-e"], path))
    assert status == 404  # an auditor may read any patient's: there is none
    status, answer = await _get(node, path, _signed(KEYS["hosp-a"], path))
    assert (status, _code(answer)) == (403, "not-entitled")  # not its enroller


async def test_a_bad_parameter_is_400_to_a_member(node: ChainNode) -> None:
    path = "/v1/trials/NOT-A-TRIAL/participants/" + PARTICIPANT
    status, answer = await _get(node, path, _signed(KEYS["spon-g"], path))
    assert (status, _code(answer)) == (400, "malformed")


@pytest.mark.parametrize(
    "path",
    [
        "/v1/members",
        "/v1/members/hosp-a",
        f"/v1/trials/{NCT}",
        f"/v1/trials/{NCT}/report",
        f"/v1/trials/{NCT}/reconsent",
        "/v1/trials",
        "/v1/policies/gold",
        "/v1/ehr/emergency-accesses",
        "/v1/supply/alerts",
        "/v1/claims-statements/insurers/ins-c",
    ],
)
async def test_public_queries_stay_open_unsigned(node: ChainNode, path: str) -> None:
    status, answer = await _get(node, path)
    assert status == 200, answer


def test_entitlement_needs_an_active_member() -> None:
    """A suspended member keeps no entitlement its role or its name gave it."""
    store = MemoryChainStore()
    state = BlockState(store)
    auditor = {"id": "aud", "name": "A", "roles": ["auditor"], "keys": ["aa" * 32]}
    insurer = {"id": "ins", "name": "I", "roles": ["insurer"], "keys": ["bb" * 32]}
    scope = PatientScope("patient", "x", ("auditor",), lambda _s, p: (p["insurer"],))
    path = {"insurer": "ins", "patient": "cc" * 32}
    for member in (auditor, insurer):
        put_member(state, {**member, "status": "active"})
    assert scope.entitled(state, path, "aa" * 32) and scope.entitled(state, path, "bb" * 32)
    assert scope.entitled(state, path, "cc" * 32)  # the patient key itself
    assert not scope.entitled(state, path, "dd" * 32)  # no member
    for member in (auditor, insurer):
        put_member(state, {**member, "status": "suspended"})
    assert not scope.entitled(state, path, "aa" * 32)
    assert not scope.entitled(state, path, "bb" * 32)


def test_openapi_shows_the_signature_on_scoped_routes_only() -> None:
    paths = openapi_document()["paths"]
    for path in ("/v1/ehr/patients/{key}/consents", "/v1/coverage/{insurer}/{patient}"):
        op = paths[path]["get"]
        assert {"401", "403", "503"} <= set(op["responses"])
        names = {p["name"] for p in op["parameters"] if p["in"] == "header"}
        assert names == {"X-Hygeia-Signer", "X-Hygeia-Time", "X-Hygeia-Signature"}
        assert "docs/privacy.md" in op["description"]
    for path in ("/v1/ehr/records/{record_id}", "/v1/trials/{trial_id}", "/v1/members"):
        op = paths[path]["get"]
        assert "401" not in op["responses"] and "403" not in op["responses"]
        assert all(p["in"] != "header" for p in op["parameters"])
