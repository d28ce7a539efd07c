"""The node's own ``epoch.attest`` transactions: it signs each new validator set it
was a validator before.

What it is for: a proof made after a validator change carries each new set
attested by a quorum of the previous one (``node/core/epoch_link.py``), and the
attestations live on chain (``node/ledger/domains/epoch_attest.py``). Every node
whose key is in epoch e-1's set, validator or follower now (a removed validator
still attests the set that replaced it), submits its attestation of epoch e as
soon as its state holds epoch e and not its attestation yet.

The transaction is deterministic (nonce = the epoch number, Ed25519 signatures
are deterministic), so a resubmission after a crash or a dropped gossip is the
same transaction: the mempool and the ledger see it once. ``tick`` is called
with the committed state after each block; it resubmits an attestation still
missing ``retry_ms`` after it was last submitted. Time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import nacl.signing

from node.core.keys import public_key_hex, sign
from node.core.tx import Tx, build_tx
from node.ledger.domains.epoch_attest import EPOCH_ATTEST, attestation_key, statement_of
from node.ledger.state import BlockState
from node.ledger.validators import EpochRecord, load_epochs

__all__ = ["EpochAttester"]

RETRY_MS: Final = 10_000


class EpochAttester:
    """Submits this node's missing attestations (see the module docstring)."""

    def __init__(
        self,
        chain_id: str,
        key: nacl.signing.SigningKey,
        submit: Callable[[Tx], None],
        *,
        retry_ms: int = RETRY_MS,
    ) -> None:
        self._chain_id = chain_id
        self._key = key
        self._me = public_key_hex(key)
        self._submit = submit
        self._retry_ms = retry_ms
        self._settled = 0  # every epoch <= this is attested on chain or not ours to attest
        self._sent: dict[int, int] = {}  # epoch -> when last submitted (ms)

    def due(self, state: BlockState) -> list[EpochRecord]:
        """The epochs above the settled ones that this node should attest and that the
        state holds no attestation of it for; settles the others."""
        records = load_epochs(state)
        out: list[EpochRecord] = []
        for record in records[self._settled + 1 :]:
            index = records[record.epoch - 1].index_of(self._me)
            if index is not None and state.get(attestation_key(record.epoch, index)) is None:
                out.append(record)
            elif not out:
                self._settled = record.epoch
                self._sent.pop(record.epoch, None)
        return out

    def tick(self, state: BlockState, latest_epoch: int, now_ms: int) -> list[Tx]:
        """Submit what is due (``latest_epoch``: the highest epoch the node knows, so
        that nothing is read while every epoch is settled); returns what it submitted."""
        if latest_epoch <= self._settled:
            return []
        submitted: list[Tx] = []
        for record in self.due(state):
            last = self._sent.get(record.epoch)
            if last is not None and now_ms - last < self._retry_ms:
                continue
            signature = sign(self._key, statement_of(self._chain_id, record))
            tx = build_tx(
                self._chain_id,
                EPOCH_ATTEST.name,
                {"epoch": record.epoch, "signature": signature.hex()},
                self._key,
                record.epoch,
            )
            self._sent[record.epoch] = now_ms
            self._submit(tx)
            submitted.append(tx)
        return submitted
