"""What an apply function sees: the block, the signer, the state and genesis's epoch rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from node.ledger.state import BlockState
from node.ledger.validators import EpochRule


class LedgerTx(Protocol):
    """The parts of a decoded, signature-checked transaction the ledger uses."""

    @property
    def hash(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def body(self) -> Any: ...

    @property
    def signer(self) -> str: ...


@dataclass(frozen=True)
class BlockInfo:
    chain_id: str
    height: int
    # block time in ms: the certified timestamp, or the previous block's time if
    # that was later (it never goes backwards); never the wall clock
    time_ms: int
    proposer: int


@dataclass
class ExecContext:
    block: BlockInfo
    state: BlockState
    tx: LedgerTx
    index: int
    # genesis's checkpoint interval and watermark window: where a validator change
    # executed in this block takes effect (node/ledger/validators.py)
    epoch_rule: EpochRule
