"""Client workload: when transactions arrive and what their bytes are.

Open loop: transactions arrive at ``rate_tps``, evenly spaced (``fixed``) or
with gaps drawn uniformly from [0, 2 * mean] (``uniform``), from ``start_ms``
until ``stop_ms``. Closed loop: ``clients`` clients each keep one transaction
in flight and send the next one ``think_ms`` after the previous one commits.
A transaction is ``b"tx:<seq>:"`` padded with dots to ``tx_size`` bytes, so it
satisfies ``SimPayloadRules`` and is unique in the run.
"""

from __future__ import annotations

import random

from node.sim.scenario import WorkloadSpec


class Workload:
    def __init__(self, spec: WorkloadSpec, rng: random.Random) -> None:
        self.spec = spec
        self._rng = rng
        self.seq = 0
        # arrival time of every transaction not yet committed
        self.pending: dict[bytes, int] = {}
        self._client_of: dict[bytes, int] = {}
        # fixed spacing in micro-ms so rates that do not divide 1000 stay exact
        self._gap_num = 1_000
        self._gap_den = spec.rate_tps

    def exhausted(self, now: int) -> bool:
        s = self.spec
        if s.max_txs and self.seq >= s.max_txs:
            return True
        return bool(s.stop_ms) and now >= s.stop_ms

    def new_tx(self, now: int, client: int = -1) -> bytes:
        self.seq += 1
        head = b"tx:%d:" % self.seq
        tx = head + b"." * (self.spec.tx_size - len(head))
        self.pending[tx] = now
        if client >= 0:
            self._client_of[tx] = client
        return tx

    def open_arrival(self, k: int) -> int:
        """Virtual time of the k-th (0-based) open-loop arrival with fixed spacing."""
        return self.spec.start_ms + k * self._gap_num // self._gap_den

    def uniform_gap(self) -> int:
        mean2 = 2 * self._gap_num // self._gap_den
        return self._rng.randrange(mean2 + 1)

    def committed(self, tx: bytes, now: int) -> tuple[int | None, int]:
        """(latency or None if unknown/already counted, closed-loop client or -1)."""
        at = self.pending.pop(tx, None)
        if at is None:
            return None, -1
        return now - at, self._client_of.pop(tx, -1)
