"""Apply throughput of the health-records and anchor transaction types, on one core.

``python -m node.bench.apply_ehr [--txs N]`` prints JSON: per type, N
transactions executed in blocks of 1,000 (``apply_common.BenchChain``):
patient.enroll, record.anchor, consent.grant, access.log, access.emergency,
consent.revoke, data.anchor, access.review (an auditor closes the review of each
break-glass access) and record.erase (the custodian erases each record), each on
the state the previous ones left. Every transaction must be accepted: a
rejection raises ``RuntimeError`` (``apply_common.require_accepted``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from node.bench.apply_common import BenchChain, require_accepted, run_main
from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx

CHAIN = "bench-ehr"
HOSP_A = key_from_seed(b"\x31" * 32)
HOSP_B = key_from_seed(b"\x32" * 32)
AUDITOR = key_from_seed(b"\x33" * 32)
MEMBERS = [
    {"id": "hosp-a", "name": "A", "roles": ["hospital"], "keys": [public_key_hex(HOSP_A)]},
    {"id": "clinic-b", "name": "B", "roles": ["clinic"], "keys": [public_key_hex(HOSP_B)]},
    {"id": "audit-c", "name": "C", "roles": ["auditor"], "keys": [public_key_hex(AUDITOR)]},
]


def _digest(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def run(txs: int = 5000) -> dict[str, Any]:
    chain = BenchChain(CHAIN, MEMBERS)
    chain.block([])  # genesis members
    patients = [key_from_seed(hashlib.sha256(f"patient-{i}".encode()).digest()) for i in range(txs)]
    pub = [public_key_hex(k) for k in patients]
    per_type: dict[str, Any] = {}

    def step(name: str, signed: list[Tx]) -> None:
        per_type[name] = chain.measure(signed)
        require_accepted(chain, name, per_type[name]["not_accepted"])

    step(
        "patient.enroll",
        chain.sign(txs, "patient.enroll", HOSP_A, lambda i: {"patient": pub[i]}),
    )
    step(
        "record.anchor",
        chain.sign(
            txs,
            "record.anchor",
            HOSP_A,
            lambda i: {
                "record_id": f"rec-{i}",
                "patient": pub[i],
                "type": "DiagnosticReport",
                "commitment": _digest(f"doc-{i}"),
                "version": 1,
            },
        ),
    )
    grant_body = {
        "grantee": "clinic-b",
        "scope": "all",
        "purpose": ["TREAT"],
        "period": {"start": 0, "end": 10**13},
    }
    grants = chain.sign_each("consent.grant", [(k, grant_body) for k in patients])
    step("consent.grant", grants)
    step(
        "access.log",
        chain.sign(
            txs,
            "access.log",
            HOSP_B,
            lambda i: {"record_id": f"rec-{i}", "purpose": "TREAT", "consent_id": grants[i].hash},
        ),
    )
    emergencies = chain.sign(
        txs,
        "access.emergency",
        HOSP_B,
        lambda i: {"record_id": f"rec-{i}", "reason": "ETREAT", "duration_ms": 3_600_000},
    )
    step("access.emergency", emergencies)
    revokes = chain.sign_each(
        "consent.revoke",
        [(k, {"consent_id": g.hash}) for k, g in zip(patients, grants, strict=True)],
    )
    step("consent.revoke", revokes)
    step(
        "data.anchor",
        chain.sign(txs, "data.anchor", HOSP_A, lambda i: {"digest": _digest(f"anchor-{i}")}),
    )
    step(
        "access.review",
        chain.sign(
            txs,
            "access.review",
            AUDITOR,
            lambda i: {"emergency": emergencies[i].hash, "finding": "justified"},
        ),
    )
    step(
        "record.erase",
        chain.sign(
            txs,
            "record.erase",
            HOSP_A,
            lambda i: {"record_id": f"rec-{i}", "reason": "patient-request"},
        ),
    )
    return {
        "bench": "apply_ehr",
        "one_core": True,
        "block_txs": chain.block_txs,
        "per_type": per_type,
    }


def main() -> None:
    run_main(__doc__, run)


if __name__ == "__main__":
    main()
