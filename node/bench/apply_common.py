"""The shared harness of the ledger apply benchmarks (``node/bench/apply_*.py``).

``BenchChain`` executes blocks with the real ``Ledger`` and commits their
writes to a ``MemoryChainStore``, so what is timed is execution plus the
in-memory commit, on one core, with signing done beforehand. ``measure``
times one list of transactions and reports tx/s and how many were not
accepted (a bench whose transactions get rejected measures the wrong thing);
``require_accepted`` turns any such count into an error, so that no bench
reports a rate for transactions the ledger rejected or refused.
``run_main`` is the command line of a bench that takes only ``--txs``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import nacl.signing

from node.core.tx import Tx, build_tx
from node.ledger.context import BlockInfo
from node.ledger.executor import Ledger
from node.ledger.validators import EpochRule
from node.setup.genesis import default_consensus_params
from storage.memory import MemoryChainStore

GENESIS_TIME_MS = 1_700_000_000_000


class BenchChain:
    def __init__(
        self, chain_id: str, members: Sequence[dict[str, Any]], block_txs: int = 1000
    ) -> None:
        self.chain_id = chain_id
        self.members = list(members)
        self.block_txs = block_txs
        self.store = MemoryChainStore()
        self.ledger = Ledger()
        self.height = 0
        self.root = b"\0" * 32
        self.rejected = 0
        self.refused = 0
        self.rejections: dict[str, int] = {}

    def time_ms(self) -> int:
        return GENESIS_TIME_MS + 1000 * self.height

    def block(self, txs: Sequence[Tx]) -> None:
        self.height += 1
        h = self.height
        out = self.ledger.execute_block(
            self.store,
            BlockInfo(self.chain_id, h, self.time_ms(), 0),
            txs,
            self.root,
            lambda x: self.store.tx_location(bytes.fromhex(x)) is not None,
            genesis_members=self.members if h == 1 else (),
            epoch_rule=EpochRule.of(default_consensus_params()),
        )
        self.store.commit_block(
            h,
            hashlib.sha256(h.to_bytes(8, "big")).digest(),
            b"block",
            [tx.hash_bytes for tx in txs],
            out.writes,
        )
        self.root = out.state_root
        for r in out.results:
            if r.status != "ok":
                self.rejected += 1
                self.rejections[r.code] = self.rejections.get(r.code, 0) + 1
            elif r.data.get("outcome") == "refused":
                self.refused += 1

    def timed_both(self, txs: Sequence[Tx]) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) to apply and commit ``txs``;
        CPU time stays meaningful on a loaded machine."""
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(0, len(txs), self.block_txs):
            self.block(txs[i : i + self.block_txs])
        return time.perf_counter() - start, time.process_time() - cpu

    def timed(self, txs: Sequence[Tx]) -> float:
        return self.timed_both(txs)[0]

    def sign(
        self,
        n: int,
        tx_type: str,
        key: nacl.signing.SigningKey,
        body: Callable[[int], dict[str, Any]],
    ) -> list[Tx]:
        return [build_tx(self.chain_id, tx_type, body(i), key, i) for i in range(n)]

    def sign_each(
        self, tx_type: str, signed_bodies: Sequence[tuple[nacl.signing.SigningKey, dict[str, Any]]]
    ) -> list[Tx]:
        """One transaction per (signer, body): for types each signer sends once."""
        return [
            build_tx(self.chain_id, tx_type, body, key, i)
            for i, (key, body) in enumerate(signed_bodies)
        ]

    def measure(self, txs: Sequence[Tx]) -> dict[str, Any]:
        before = self.rejected + self.refused
        seconds, cpu = self.timed_both(txs)
        return {
            "txs": len(txs),
            "seconds": round(seconds, 3),
            "tx_per_s": int(len(txs) / seconds) if seconds > 0 else 0,
            "tx_per_cpu_s": int(len(txs) / cpu) if cpu > 0 else 0,
            "not_accepted": self.rejected + self.refused - before,
        }


def require_accepted(chain: BenchChain, name: str, not_accepted: int) -> None:
    """Raise ``RuntimeError`` when ``not_accepted`` transactions of ``name`` (a timed type,
    or a bench's untimed set-up) were rejected or refused: the rate would time the
    rejection path, not the type's."""
    if not_accepted:
        raise RuntimeError(
            f"{chain.chain_id}: {not_accepted} {name} transaction(s) not accepted "
            f"(rejection codes so far: {dict(sorted(chain.rejections.items()))}, "
            f"refused so far: {chain.refused})"
        )


def prepare(chain: BenchChain, name: str, txs: Sequence[Tx]) -> None:
    """Apply ``txs`` in blocks, untimed: the set-up a timed type needs that the types
    timed before it did not leave; every one must be accepted (``require_accepted``)."""
    before = chain.rejected + chain.refused
    chain.timed(txs)
    require_accepted(chain, name, chain.rejected + chain.refused - before)


def run_main(doc: str | None, run: Callable[[int], dict[str, Any]]) -> None:
    """``python -m node.bench.apply_X [--txs N]``: print ``run(N)`` as JSON."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--txs", type=int, default=5000, help="transactions per type")
    args = parser.parse_args()
    print(json.dumps(run(args.txs), indent=2, sort_keys=True))
