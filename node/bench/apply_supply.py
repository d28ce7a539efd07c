"""Apply throughput of the drug supply chain's transaction types, on one core.

``python -m node.bench.apply_supply [--txs N]`` prints JSON. ``run()`` builds
and signs every transaction first (signing is not timed), then times
``Ledger.execute_block`` plus the commit of its writes to a
``storage.memory.MemoryChainStore``, in blocks of ``BLOCK_TXS`` transactions:

* per type, ``N`` one-serial transactions (each type in its own blocks, on the
  packs the previous type left: commission, ship, receive, suspect, clear,
  dispense, undispense (the pharmacy undoes each dispense, within the 10 days),
  then recall and decommission on other packs); ``tx_per_s`` is transactions
  per second of apply, the goal is at least 5,000;
* ``commission_100k``: 100,000 serials commissioned by 100 transactions of
  1,000 serials, in one block stream; the goal is under 30 s.

Every transaction must be accepted: a rejection, or a movement refused with an
alert, raises ``RuntimeError`` (``apply_common.require_accepted``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import nacl.signing

from node.bench.apply_common import BenchChain, require_accepted
from node.core.keys import key_from_seed, public_key_hex
from node.core.tx import Tx, build_tx
from node.ledger.gs1 import with_check_digit

CHAIN = "bench-supply"
BLOCK_TXS = 1000
GOAL_TX_PER_S = 5000
GOAL_COMMISSION_100K_S = 30.0

MFR = key_from_seed(b"\x11" * 32)
PHARMACY = key_from_seed(b"\x12" * 32)
REGULATOR = key_from_seed(b"\x13" * 32)
MEMBERS = [
    {"id": "mfr", "name": "M", "roles": ["manufacturer"], "keys": [public_key_hex(MFR)]},
    {"id": "pharm", "name": "P", "roles": ["pharmacy"], "keys": [public_key_hex(PHARMACY)]},
    {"id": "reg", "name": "R", "roles": ["regulator"], "keys": [public_key_hex(REGULATOR)]},
]
GTIN = with_check_digit("0" + "400599" + "999999")
GTIN_BULK = with_check_digit("0" + "400599" + "888888")


class _Chain(BenchChain):
    def __init__(self) -> None:
        super().__init__(CHAIN, MEMBERS, BLOCK_TXS)


def _sign(
    n: int, tx_type: str, key: nacl.signing.SigningKey, body: Callable[[int], dict[str, Any]]
) -> list[Tx]:
    return [build_tx(CHAIN, tx_type, body(i), key, i) for i in range(n)]


def run(txs: int = 5000, bulk_serials: int = 100_000) -> dict[str, Any]:
    """Apply throughput per type and the 100k-serial commission; see the module docstring."""
    chain = _Chain()
    chain.block([])  # genesis members
    s = [f"S{i:09d}" for i in range(txs)]
    d = [f"D{i:09d}" for i in range(txs)]  # for decommission and recall
    exp = "301231"
    plan: list[tuple[str, list[Tx]]] = [
        (
            "drug.commission",
            _sign(
                txs,
                "drug.commission",
                MFR,
                lambda i: {"gtin": GTIN, "lot": "L1", "expiry": exp, "serials": [s[i], d[i]]},
            ),
        ),
        (
            "drug.ship",
            _sign(
                txs,
                "drug.ship",
                MFR,
                lambda i: {"gtin": GTIN, "serials": [s[i]], "to": "pharm"},
            ),
        ),
        (
            "drug.receive",
            _sign(txs, "drug.receive", PHARMACY, lambda i: {"gtin": GTIN, "serials": [s[i]]}),
        ),
        (
            "drug.suspect",
            _sign(txs, "drug.suspect", PHARMACY, lambda i: {"gtin": GTIN, "serials": [s[i]]}),
        ),
        (
            "drug.clear",
            _sign(txs, "drug.clear", REGULATOR, lambda i: {"gtin": GTIN, "serials": [s[i]]}),
        ),
        (
            "drug.dispense",
            _sign(
                txs,
                "drug.dispense",
                PHARMACY,
                lambda i: {"gtin": GTIN, "serials": [s[i]], "lot": "L1", "expiry": exp},
            ),
        ),
        (
            "drug.undispense",
            _sign(txs, "drug.undispense", PHARMACY, lambda i: {"gtin": GTIN, "serials": [s[i]]}),
        ),
        (
            "drug.recall",
            _sign(txs, "drug.recall", MFR, lambda i: {"gtin": GTIN, "serials": [d[i]]}),
        ),
        (
            "drug.decommission",
            _sign(
                txs,
                "drug.decommission",
                MFR,
                lambda i: {"gtin": GTIN, "serials": [d[i]], "reason": "destroyed"},
            ),
        ),
    ]
    per_type: dict[str, Any] = {}
    for name, signed in plan:
        before = (chain.rejected, chain.refused)
        seconds = chain.timed(signed)
        per_type[name] = {
            "txs": len(signed),
            "seconds": round(seconds, 3),
            "tx_per_s": int(len(signed) / seconds) if seconds > 0 else 0,
            "not_accepted": chain.rejected + chain.refused - sum(before),
        }
        require_accepted(chain, name, per_type[name]["not_accepted"])
    chunk = 1000
    bulk = _sign(
        bulk_serials // chunk,
        "drug.commission",
        MFR,
        lambda i: {
            "gtin": GTIN_BULK,
            "lot": f"B{i // 10}",
            "expiry": exp,
            "serials": [f"{i * chunk + j:012d}" for j in range(chunk)],
        },
    )
    before = (chain.rejected, chain.refused)
    seconds = chain.timed(bulk)
    bulk_not_accepted = chain.rejected + chain.refused - sum(before)
    require_accepted(chain, "drug.commission (100k serials)", bulk_not_accepted)
    slowest = min(v["tx_per_s"] for v in per_type.values())
    return {
        "bench": "apply_supply",
        "one_core": True,
        "block_txs": BLOCK_TXS,
        "per_type": per_type,
        "commission_100k": {
            "serials": bulk_serials,
            "txs": len(bulk),
            "seconds": round(seconds, 3),
            "serials_per_s": int(bulk_serials / seconds) if seconds > 0 else 0,
            "not_accepted": bulk_not_accepted,
        },
        "goals": {
            "drug_tx_per_s_min": GOAL_TX_PER_S,
            "drug_tx_per_s_met": slowest >= GOAL_TX_PER_S,
            "commission_100k_s_max": GOAL_COMMISSION_100K_S,
            "commission_100k_met": seconds < GOAL_COMMISSION_100K_S,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--txs", type=int, default=5000, help="transactions per type")
    parser.add_argument("--serials", type=int, default=100_000, help="serials to commission")
    args = parser.parse_args()
    print(json.dumps(run(args.txs, args.serials), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
