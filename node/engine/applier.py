"""Turns committed proposals into stored blocks: execute, derive the header, write.

The one place where a block becomes durable. For each committed proposal,
in height order: decode its transactions (through the payload rules' cache),
run the ledger, derive the header (parent hash = previous block's hash, state
root = the ledger's new root; docs/blocks.md), and write block,
indexes and state changes in one synced LevelDB batch. Only then may the
node answer ``committed`` for its transactions.

The founding members of genesis and its validators (epoch 0 of the validator
set, node/ledger/validators.py) enter the app state with block 1's writes
(``Ledger.execute_block(genesis_members=..., genesis_validators=...)``), so every
node's state root covers them without a block 0. ``epoch_schedule`` is the
validator set's epochs as the committed state holds them, for consensus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from consensus.epochs import EpochSchedule
from consensus.messages import CommittedBlock
from consensus.replica import ChainTip
from node.core.block import GENESIS_PARENT_HASH, Block, derive_block
from node.core.tx import Tx, TxPayloadRules
from node.engine.proof_archive import digests_key
from node.ledger.context import BlockInfo
from node.ledger.executor import BlockOutcome, Ledger, result_key
from node.ledger.state import BlockState
from node.ledger.validators import genesis_epoch, load_epochs, to_schedule
from node.setup.genesis import Genesis
from storage.base import ChainStorage


class ApplyError(RuntimeError):
    """A committed block that cannot be applied: the node must stop, not skip it."""


@dataclass(frozen=True)
class Tip:
    height: int
    block_hash: str
    state_root: bytes
    timestamp: int


def genesis_root(genesis: Genesis) -> bytes:
    return hashlib.sha256(b"hygeia/genesis" + genesis.genesis_hash()).digest()


class BlockApplier:
    def __init__(
        self, store: ChainStorage, genesis: Genesis, ledger: Ledger, rules: TxPayloadRules
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.ledger = ledger
        self.rules = rules
        self.tip = self._load_tip()

    def _load_tip(self) -> Tip:
        height = self.store.tip_height()
        if height == 0:
            return Tip(
                0, GENESIS_PARENT_HASH, genesis_root(self.genesis), self.genesis.genesis_time
            )
        raw = self.store.block_by_height(height)
        if raw is None:
            raise ApplyError(f"storage: tip block {height} is missing")
        block = Block.from_bytes(raw)
        return Tip(
            height, block.hash, bytes.fromhex(block.header.state_root), block.header.timestamp
        )

    def reload(self) -> None:
        """Read the tip from the store again (after it was reopened: a write that
        failed may have landed after all)."""
        self.tip = self._load_tip()

    def chain_tip(self) -> ChainTip:
        return ChainTip(self.tip.height, self.tip.timestamp, self.tip.state_root)

    def epoch_schedule(self) -> EpochSchedule:
        """The validator set's epochs in the committed state (genesis's alone before block 1)."""
        records = load_epochs(BlockState(self.store))
        return to_schedule(records or [genesis_epoch(self.genesis.validators_json())])

    def is_committed(self, tx_hash: str) -> bool:
        """The replay rule: the state keeps the result of every committed transaction
        (all but a rejected replay, whose first copy has one), so one lookup answers,
        below a state-synced node's base too, where the tx index has no entry."""
        return self.store.state_get(result_key(tx_hash)) is not None

    def apply(self, committed: CommittedBlock) -> tuple[Block, BlockOutcome]:
        p = committed.proposal
        if p.height != self.tip.height + 1:
            raise ApplyError(f"block {p.height} out of order: tip is {self.tip.height}")
        txs: list[Tx] = []
        for item in committed.payload:
            tx = self.rules.decode(item)
            if tx is None:
                raise ApplyError(f"block {p.height}: committed payload holds a non-transaction")
            txs.append(tx)
        info = BlockInfo(p.chain_id, p.height, p.timestamp, p.proposer)
        first = p.height == 1
        outcome = self.ledger.execute_block(
            self.store,
            info,
            txs,
            self.tip.state_root,
            self.is_committed,
            genesis_members=self.genesis.members_json() if first else (),
            genesis_validators=self.genesis.validators_json() if first else (),
            epoch_rule=self.genesis.epoch_rule(),
        )
        block = derive_block(
            committed, self.tip.block_hash, outcome.state_root, tx_hash=self.rules.request_id
        )
        self.store.commit_block(
            p.height,
            bytes.fromhex(block.hash),
            block.to_bytes(),
            block.tx_hashes,
            outcome.writes,
            proof_writes=[(digests_key(p.height), outcome.digests.to_bytes())],
        )
        self.tip = Tip(p.height, block.hash, outcome.state_root, p.timestamp)
        return block, outcome
