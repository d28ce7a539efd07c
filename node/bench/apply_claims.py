"""Apply throughput of the claims domain, per transaction type, on one core.

``run()`` executes blocks of pre-signed transactions of one type at a time
with ``Ledger.execute_block`` on a ``MemoryChainStore`` (replay check, schema,
authorisation, apply and result, as a node does; signature checks and storage
writes are not part of apply) and returns, per type, the count, the CPU
seconds of this process spent executing (``time.process_time``: one core's
worth, not inflated when other processes share the machine) and the rate.
Goal: ``claim.submit`` at least 5,000 tx/s.

In story order, each type on the state the previous types left: policy.publish,
coverage.enroll, preauth.request, preauth.decide, claim.submit, claim.settle,
claim.reverse (of each settlement's payment) and claim.void (the provider
voids each claim, unpaid again after the reversal). Any rejected transaction
raises ``RuntimeError``.

    python -m node.bench.apply_claims [--count N] [--block B]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from typing import Any

from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.executor import Ledger
from node.ledger.validators import EpochRule
from node.setup.genesis import default_consensus_params
from storage.memory import MemoryChainStore

CHAIN = "bench-claims"
T0 = 1_740_787_200_000  # 2025-03-01T00:00:00Z
GOAL = {"claim.submit": 5_000}


def _patient(i: int) -> str:
    return hashlib.sha256(b"bench-patient-%d" % i).hexdigest()


def run(count: int = 5_000, block: int = 500) -> dict[str, Any]:
    """Per type: {"count", "seconds", "tx_per_s"}; plus the goal and whether it is met."""
    hospital, insurer = key_from_seed(b"\x11" * 32), key_from_seed(b"\x12" * 32)
    members = [
        {"id": "h1", "name": "h1", "roles": ["hospital"], "keys": [public_key_hex(hospital)]},
        {"id": "i1", "name": "i1", "roles": ["insurer"], "keys": [public_key_hex(insurer)]},
    ]
    nonce = iter(range(1, 1 << 40))

    def tx(key: Any, tx_type: str, body: dict[str, Any]) -> Tx:
        return build_tx(CHAIN, tx_type, body, key, next(nonce))

    services = [{"code": f"S{i:04d}", "allowed": 10_000 + i} for i in range(50)]
    plan: list[tuple[str, list[Tx]]] = [
        (
            "policy.publish",
            [
                tx(
                    insurer,
                    "policy.publish",
                    {
                        "policy_id": f"p{i}",
                        "currency": "EUR",
                        "services": services,
                        "copay_bp": 2_000,
                        "copay_fixed": 500,
                        "deductible": 5_000,
                        "annual_limit": 1_000_000,
                        "preauth_codes": ["S0049"],
                    },
                )
                for i in range(count)
            ],
        ),
        (
            "coverage.enroll",
            [
                tx(
                    insurer,
                    "coverage.enroll",
                    {
                        "coverage_id": f"cov-{i}",
                        "patient": _patient(i),
                        "policy_id": "p0",
                        "start": "2025-01-01",
                        "end": "2025-12-31",
                    },
                )
                for i in range(count)
            ],
        ),
        (
            "preauth.request",
            [
                tx(
                    hospital,
                    "preauth.request",
                    {
                        "preauth_id": f"pa-{i}",
                        "patient": _patient(i),
                        "insurer": "i1",
                        "service_codes": ["S0049"],
                    },
                )
                for i in range(count)
            ],
        ),
        (
            "preauth.decide",
            [
                tx(
                    insurer,
                    "preauth.decide",
                    {"provider": "h1", "preauth_id": f"pa-{i}", "decision": "approved"},
                )
                for i in range(count)
            ],
        ),
        (
            "claim.submit",
            [
                tx(
                    hospital,
                    "claim.submit",
                    {
                        "claim_id": f"c-{i}",
                        "patient": _patient(i),
                        "insurer": "i1",
                        "items": [
                            {
                                "service_code": "S0001",
                                "quantity": 1,
                                "unit_price": 12_000,
                                "service_date": "2025-03-01",
                            },
                            {
                                "service_code": "S0049",
                                "quantity": 2,
                                "unit_price": 9_000,
                                "service_date": "2025-03-01",
                            },
                        ],
                        "diagnosis": ["J20.9"],
                        "preauth": f"pa-{i}",
                    },
                )
                for i in range(count)
            ],
        ),
        (
            "claim.settle",
            [
                tx(
                    insurer,
                    "claim.settle",
                    {
                        "provider": "h1",
                        "claim_id": f"c-{i}",
                        "payment_ref": f"pay-{i}",
                        "amount": 1,
                    },
                )
                for i in range(count)
            ],
        ),
        (
            "claim.reverse",
            [
                tx(
                    insurer,
                    "claim.reverse",
                    {
                        "provider": "h1",
                        "claim_id": f"c-{i}",
                        "payment_ref": f"pay-{i}",
                        "reason": "bench",
                    },
                )
                for i in range(count)
            ],
        ),
        (
            # the reversal above took each claim's payment back: active, nothing paid
            "claim.void",
            [
                tx(
                    hospital,
                    "claim.void",
                    {"provider": "h1", "claim_id": f"c-{i}", "reason": "bench"},
                )
                for i in range(count)
            ],
        ),
    ]

    store = MemoryChainStore()
    ledger = Ledger()
    root = b"\0" * 32
    height = 0

    def execute(txs: list[Tx]) -> float:
        nonlocal root, height
        height += 1
        started = time.process_time()
        out = ledger.execute_block(
            store,
            BlockInfo(CHAIN, height, T0 + 1000 * height, 0),
            txs,
            root,
            lambda h: store.tx_location(bytes.fromhex(h)) is not None,
            genesis_members=members if height == 1 else (),
            epoch_rule=EpochRule.of(default_consensus_params()),
        )
        elapsed = time.process_time() - started
        bad = [r for r in out.results if r.status != "ok"]
        if bad:
            raise RuntimeError(f"bench tx rejected: {bad[0].code}: {bad[0].message}")
        store.commit_block(
            height,
            hashlib.sha256(b"%d" % height).digest(),
            b"block",
            [t.hash_bytes for t in txs],
            out.writes,
        )
        root = out.state_root
        return elapsed

    execute([])
    types: dict[str, dict[str, Any]] = {}
    for name, txs in plan:
        seconds = sum(execute(txs[i : i + block]) for i in range(0, len(txs), block))
        types[name] = {
            "count": len(txs),
            "seconds": round(seconds, 4),
            "tx_per_s": int(len(txs) / seconds) if seconds > 0 else 0,
        }
    goals = {
        name: {"goal_tx_per_s": goal, "met": types[name]["tx_per_s"] >= goal}
        for name, goal in GOAL.items()
    }
    return {"bench": "apply_claims", "block_size": block, "types": types, "goals": goals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="transactions per type")
    parser.add_argument("--block", type=int, default=500, help="transactions per block")
    args = parser.parse_args()
    print(json.dumps(run(args.count, args.block), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
