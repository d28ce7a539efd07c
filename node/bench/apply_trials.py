"""Apply throughput of the clinical trials' transaction types, on one core.

``python -m node.bench.apply_trials [--txs N]`` prints JSON. ``run()`` builds
and signs every transaction first (signing is not timed), then times
``Ledger.execute_block`` plus the commit of its writes to a
``storage.memory.MemoryChainStore``, in blocks of ``BLOCK_TXS`` transactions,
each type in its own blocks, in story order:

* ``trial.register``: N trials (one primary, two secondary outcomes, two sites);
* ``trial.consent``, ``trial.enroll``, ``trial.data``, ``trial.withdraw``: N
  each on the first trial (the hot path: one trial record updated by every
  transaction, N participants, N data batches);
* ``trial.amend``: one on every trial (registered without an ethics committee,
  so each amendment takes effect at once);
* ``trial.approve``: the ethics committee approves one pending amendment on
  each of N other trials. Those trials name the committee at registration and
  their amendments await its decision; registering and amending them is set-up,
  applied in blocks of its own and not timed;
* ``trial.lock``, ``trial.results``: one each on every trial of the first N.

``tx_per_s`` is transactions per second of apply (wall clock), ``tx_per_cpu_s``
the same per CPU second of this process (steadier on a loaded machine);
``not_accepted`` counts transactions that were rejected: any, timed or set-up,
raises ``RuntimeError`` (``apply_common.require_accepted``).
"""

from __future__ import annotations

import hashlib
from typing import Any

from node.bench.apply_common import BenchChain, prepare, require_accepted, run_main
from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx

CHAIN = "bench-trials"
BLOCK_TXS = 1000

SPONSOR = key_from_seed(b"\x21" * 32)
SITE = key_from_seed(b"\x22" * 32)
ETHICS = key_from_seed(b"\x23" * 32)
MEMBERS = [
    {"id": "sponsor", "name": "S", "roles": ["sponsor"], "keys": [public_key_hex(SPONSOR)]},
    {"id": "site-a", "name": "A", "roles": ["hospital"], "keys": [public_key_hex(SITE)]},
    {"id": "site-b", "name": "B", "roles": ["clinic"], "keys": []},
    {"id": "ethics", "name": "E", "roles": ["regulator"], "keys": [public_key_hex(ETHICS)]},
]


def _h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


OUTCOMES = {
    "primary_outcomes": [{"id": "P1", "commitment": _h("P1")}],
    "secondary_outcomes": [
        {"id": "S1", "commitment": _h("S1")},
        {"id": "S2", "commitment": _h("S2")},
    ],
}


class _Chain(BenchChain):
    def __init__(self) -> None:
        super().__init__(CHAIN, MEMBERS, BLOCK_TXS)


def _nct(i: int) -> str:
    return f"NCT{i:08d}"


def _register(i: int, committee: str | None = None) -> dict[str, Any]:
    """The ``trial.register`` body of trial ``i``, naming ``committee`` if given."""
    return {
        "trial_id": _nct(i),
        "brief_title": f"Bench trial {i}",
        "protocol_commitment": _h(f"protocol-{i}"),
        "sap_commitment": _h(f"sap-{i}"),
        **OUTCOMES,
        "sites": ["site-a", "site-b"],
        **({"ethics_committee": committee} if committee is not None else {}),
    }


def _amend(i: int) -> dict[str, Any]:
    """The ``trial.amend`` body of trial ``i``: protocol version 2, outcomes unchanged."""
    return {
        "trial_id": _nct(i),
        "reason_code": "administrative",
        "reason": "bench",
        "protocol_commitment": _h(f"protocol-{i}-v2"),
    }


def run(txs: int = 5000) -> dict[str, Any]:
    """Apply throughput per ``trial.*`` type; see the module docstring."""
    chain = _Chain()
    chain.block([])  # genesis members
    n = txs
    t0 = _nct(0)
    people = [_h(f"participant-{i}") for i in range(n)]
    nonce = iter(range(1 << 40))

    def sign(type_: str, key: Any, bodies: list[dict[str, Any]]) -> list[Tx]:
        return [build_tx(CHAIN, type_, b, key, next(nonce)) for b in bodies]

    plan: list[tuple[str, list[Tx]]] = [
        (
            "trial.register",
            sign("trial.register", SPONSOR, [_register(i) for i in range(n)]),
        ),
        (
            "trial.consent",
            sign(
                "trial.consent",
                SITE,
                [{"trial_id": t0, "participant": p, "protocol_version": 1} for p in people],
            ),
        ),
        (
            "trial.enroll",
            sign("trial.enroll", SITE, [{"trial_id": t0, "participant": p} for p in people]),
        ),
        (
            "trial.data",
            sign(
                "trial.data",
                SITE,
                [
                    {"trial_id": t0, "merkle_root": _h(f"batch-{i}"), "record_count": 100}
                    for i in range(n)
                ],
            ),
        ),
        (
            "trial.withdraw",
            sign("trial.withdraw", SITE, [{"trial_id": t0, "participant": p} for p in people]),
        ),
        (
            "trial.amend",
            sign("trial.amend", SPONSOR, [_amend(i) for i in range(n)]),
        ),
        (
            "trial.approve",
            sign(
                "trial.approve",
                ETHICS,
                [
                    {"trial_id": _nct(n + i), "protocol_version": 2, "decision": "approved"}
                    for i in range(n)
                ],
            ),
        ),
        (
            "trial.lock",
            sign(
                "trial.lock",
                SPONSOR,
                [{"trial_id": _nct(i), "lock_commitment": _h(f"lock-{i}")} for i in range(n)],
            ),
        ),
        (
            "trial.results",
            sign(
                "trial.results",
                SPONSOR,
                [
                    {"trial_id": _nct(i), **OUTCOMES, "results_commitment": _h(f"res-{i}")}
                    for i in range(n)
                ],
            ),
        ),
    ]
    # untimed: N more trials under the ethics committee, each with a pending amendment
    committee_trials = range(n, 2 * n)
    setup = {
        "trial.approve": sign(
            "trial.register", SPONSOR, [_register(i, "ethics") for i in committee_trials]
        )
        + sign("trial.amend", SPONSOR, [_amend(i) for i in committee_trials]),
    }
    per_type: dict[str, Any] = {}
    for name, signed in plan:
        if name in setup:
            prepare(chain, f"{name} set-up", setup[name])
        before = chain.rejected
        seconds, cpu = chain.timed_both(signed)
        per_type[name] = {
            "txs": len(signed),
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "tx_per_s": int(len(signed) / seconds) if seconds > 0 else 0,
            "tx_per_cpu_s": int(len(signed) / cpu) if cpu > 0 else 0,
            "not_accepted": chain.rejected - before,
        }
        require_accepted(chain, name, per_type[name]["not_accepted"])
    return {
        "bench": "apply_trials",
        "one_core": True,
        "block_txs": BLOCK_TXS,
        "per_type": per_type,
        "slowest_tx_per_s": min(v["tx_per_s"] for v in per_type.values()),
    }


def main() -> None:
    run_main(__doc__, run)


if __name__ == "__main__":
    main()
