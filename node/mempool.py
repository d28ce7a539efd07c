"""The mempool: admitted, not yet committed transactions.

The node decodes a transaction and checks its chain id, type and body (the
ledger's stateless check) and signature before it gets here (``node.daemon``).
The mempool's own admission checks, in order, each with a stable error code
(the API's, ``node.api.errors.ERROR_CODES``): size (``too-large``, HTTP 413),
duplicate (already here: idempotent, not an error), replay (already
committed), signer (``signer-not-allowed``, HTTP 403: the owner's ``check_signer``,
in the node the ledger's rule of who may sign the type, read from the committed
state), capacity — count and bytes, answering ``mempool-full`` (HTTP 503)
instead of growing without bound — and a per-signer share, so that one busy
or hostile signer cannot crowd the others out (fairness across signers). The
signer check comes before the share: without it every fresh random key would
get a share of its own, and each of its transactions would be ordered and
stored for good as rejected.

Transactions leave when committed (``remove_committed``). Each admitted
transaction is queued once for gossip (``take_gossip``); the network layer
sends it once per link. Time is passed in (``now_ms``), never read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol


class MempoolTx(Protocol):
    @property
    def hash(self) -> str: ...

    @property
    def signer(self) -> str: ...

    @property
    def wire(self) -> bytes: ...


class MempoolError(Exception):
    def __init__(self, code: str, message: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status


@dataclass(frozen=True)
class MempoolLimits:
    max_txs: int = 20_000
    max_bytes: int = 64 << 20
    max_tx_bytes: int = 64 << 10
    per_signer_max: int = 2_000


@dataclass
class _Entry:
    tx: MempoolTx
    arrived_ms: int


class Mempool:
    def __init__(
        self,
        limits: MempoolLimits,
        *,
        is_committed: Callable[[str], bool],
        check_signer: Callable[[MempoolTx], None] | None = None,
    ) -> None:
        """``check_signer`` raises ``MempoolError`` (``signer-not-allowed``) for a
        transaction whose signer may not sign it; None admits every signer."""
        self.limits = limits
        self._is_committed = is_committed
        self._check_signer = check_signer
        self._entries: dict[str, _Entry] = {}
        self._per_signer: dict[str, int] = {}
        self._bytes = 0
        self._gossip: list[MempoolTx] = []
        self.rejected: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, tx_hash: str) -> bool:
        return tx_hash in self._entries

    def holds(self, tx: MempoolTx) -> bool:
        """True when this very transaction, byte for byte, is here.

        The hash does not cover the signature, so a copy with the same hash may
        carry another (say all-zero) signature: only identical wire bytes may be
        answered as a duplicate before the signature is checked.
        """
        entry = self._entries.get(tx.hash)
        return entry is not None and entry.tx.wire == tx.wire

    @property
    def total_bytes(self) -> int:
        return self._bytes

    def oldest_age_ms(self, now_ms: int) -> int:
        for entry in self._entries.values():
            return now_ms - entry.arrived_ms
        return 0

    def add(self, tx: MempoolTx, now_ms: int, *, gossip: bool = True) -> bool:
        """Admit a decoded, signature-checked transaction.

        Returns True when newly admitted, False when it was already here;
        raises ``MempoolError`` otherwise. ``gossip=False``: admit without
        queueing it for gossip (the peer it came from already sends it on).
        """
        try:
            return self._add(tx, now_ms, gossip)
        except MempoolError as err:
            self.rejected[err.code] = self.rejected.get(err.code, 0) + 1
            raise

    def _add(self, tx: MempoolTx, now_ms: int, gossip: bool) -> bool:
        lim = self.limits
        size = len(tx.wire)
        if size > lim.max_tx_bytes:
            raise MempoolError(
                "too-large", f"transaction of {size} bytes > {lim.max_tx_bytes}", 413
            )
        if tx.hash in self._entries:
            return False
        if self._is_committed(tx.hash):
            raise MempoolError("replay", "transaction already committed")
        if self._check_signer is not None:
            self._check_signer(tx)
        if len(self._entries) >= lim.max_txs or self._bytes + size > lim.max_bytes:
            raise MempoolError("mempool-full", "mempool full, retry later", 503)
        held = self._per_signer.get(tx.signer, 0)
        if held >= lim.per_signer_max:
            raise MempoolError(
                "signer-quota", f"signer already has {held} pending transactions", 503
            )
        self._entries[tx.hash] = _Entry(tx, now_ms)
        self._per_signer[tx.signer] = held + 1
        self._bytes += size
        if gossip:
            self._gossip.append(tx)
        return True

    def take_gossip(self) -> list[MempoolTx]:
        out, self._gossip = self._gossip, []
        return [tx for tx in out if tx.hash in self._entries]

    def remove_committed(self, hashes: Iterable[str]) -> int:
        removed = 0
        for h in hashes:
            entry = self._entries.pop(h, None)
            if entry is None:
                continue
            removed += 1
            self._bytes -= len(entry.tx.wire)
            signer = entry.tx.signer
            left = self._per_signer[signer] - 1
            if left:
                self._per_signer[signer] = left
            else:
                del self._per_signer[signer]
        return removed

    def pending(self) -> list[MempoolTx]:
        """Oldest first (gossiped to a peer when its link comes up)."""
        return [e.tx for e in self._entries.values()]
