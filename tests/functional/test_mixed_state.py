"""Functional: a mixed workload of several ledger domains leaves the same state everywhere."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pytest

from node.core.keys import generate_key, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.gs1 import with_check_digit
from tests.functional.framework import FrameworkError, TestNetwork

GTIN = with_check_digit("0061414100003")
PATIENTS = 6


def test_mixed_workload_reaches_equal_state_roots_on_every_node() -> None:
    """Anchors, patient enrolments, record anchors, consents signed by patients,
    audited accesses, a break-glass access, a drug commission/ship/receive/dispense
    and deliberately refused transactions (an unauthorised signer, refused at
    admission; a consent that does not cover the purpose, rejected at execution),
    submitted to different nodes, commit on all four with equal
    block hashes and equal app-state roots in every header (the root of each block
    is the ledger's; a node that executed differently would disagree)."""
    net = TestNetwork(4, name="mixed")
    with net:
        hosp, mfr, pharm, ins = (node.member_key for node in net.nodes)
        nonce = iter(range(10**6, 2 * 10**6))

        def tx(tx_type: str, body: dict[str, Any], key: Any) -> Tx:
            return build_tx(net.chain_id, tx_type, body, key, next(nonce))

        def phase(plan: list[tuple[int, Tx]]) -> list[str]:
            hashes: list[str] = []
            for node_index, t in plan:
                hashes += net.submit(node_index, [t])
            net.wait_committed(hashes)
            return hashes

        patients = [generate_key() for _ in range(PATIENTS)]
        keys = [public_key_hex(p) for p in patients]
        phase(
            [(0, tx("patient.enroll", {"patient": k}, hosp)) for k in keys]
            + [(1, tx("data.anchor", {"digest": secrets.token_hex(32)}, mfr))]
            + [
                (
                    1,
                    tx(
                        "drug.commission",
                        {"gtin": GTIN, "lot": "L1", "expiry": "301231", "serials": ["A", "B"]},
                        mfr,
                    ),
                )
            ]
        )
        phase(
            [
                (
                    i % 4,
                    tx(
                        "record.anchor",
                        {
                            "record_id": f"rec-{i}",
                            "patient": k,
                            "type": "DiagnosticReport",
                            "commitment": hashlib.sha256(f"doc-{i}".encode()).hexdigest(),
                            "version": 1,
                        },
                        hosp,
                    ),
                )
                for i, k in enumerate(keys)
            ]
            + [(2, tx("drug.ship", {"gtin": GTIN, "serials": ["A", "B"], "to": "pharmacy-2"}, mfr))]
        )
        grants = [
            tx(
                "consent.grant",
                {
                    "grantee": "hospital-0",
                    "scope": "all",
                    "purpose": ["TREAT"],
                    "period": {"start": 0, "end": 10**13},
                },
                p,
            )
            for p in patients
        ]
        phase(
            [(i % 4, g) for i, g in enumerate(grants)]
            + [(3, tx("drug.receive", {"gtin": GTIN, "serials": ["A", "B"]}, pharm))]
        )
        # an insurer may not enrol patients: refused at admission (the ledger's rule,
        # read from the committed state), so it is never ordered nor stored
        with pytest.raises(FrameworkError, match="signer-not-allowed"):
            net.submit(0, [tx("patient.enroll", {"patient": public_key_hex(generate_key())}, ins)])
        refused = [
            # a consent granted to hospital-0 does not cover the pharmacy: rejected at
            # execution (hospital-0 itself, the records' custodian, may always access them)
            tx(
                "access.log",
                {"record_id": "rec-0", "purpose": "TREAT", "consent_id": grants[0].hash},
                pharm,
            ),
        ]
        last = phase(
            [
                (
                    i % 4,
                    tx(
                        "access.log",
                        {"record_id": f"rec-{i}", "purpose": "TREAT", "consent_id": g.hash},
                        hosp,
                    ),
                )
                for i, g in enumerate(grants)
            ]
            + [
                (
                    1,
                    tx(
                        "access.emergency",
                        {"record_id": "rec-1", "reason": "ETREAT", "duration_ms": 3_600_000},
                        hosp,
                    ),
                ),
                (2, tx("drug.dispense", {"gtin": GTIN, "serials": ["A"]}, pharm)),
            ]
            + [(k, t) for k, t in enumerate(refused)]
        )
        results = {h: net.tx_status(0, h)["result"]["status"] for h in last}
        assert [results[t.hash] for t in refused] == ["rejected"], results
        assert sum(1 for s in results.values() if s == "ok") == len(last) - len(refused)

        height = net.wait_same_height()
        assert net.assert_same_chain() == height
        for h in range(1, height + 1):
            roots = {i: net.block(i, h)["header"]["state_root"] for i in range(4)}
            assert len(set(roots.values())) == 1, f"state roots differ at height {h}: {roots}"
