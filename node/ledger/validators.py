"""The validator set as ledger state: its epochs, written by genesis and governance.

What it is for: which nodes certify which heights is chain state, so every node
learns it from the blocks it executes (and a backup or a state copy carries it).
Genesis's validators are epoch 0, from height 1; each validator change that
governance executes (``add-validator``, ``remove-validator``,
``replace-validator-key``: ``node.ledger.domains.governance``) writes the next
epoch, in force from ``EpochRule.first_height`` of the height it executed at
(the boundary rule of ``consensus/epochs.py``, which also argues why it is safe).
Consensus reads the schedule through ``to_schedule`` (the node:
``BlockApplier.epoch_schedule``); the API shows it (``GET /v1/validators``).

State: ``epoch/<number, 10 digits>`` -> canonical JSON
``{"epoch", "from_height", "validators": [{"name", "member", "node_key", "p2p"}],
"proposal", "committed_height"}``, integers only; ``proposal`` is the governance
proposal that made the epoch (null for epoch 0) and ``committed_height`` the
height it executed at (0 for epoch 0). A validator's consensus index in an epoch
is its position in ``validators``. Epoch 0 enters the state with block 1's
writes, with the founding members (``Ledger.execute_block``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from consensus.epochs import Epoch, EpochSchedule, boundary
from node.ledger.state import BlockState

__all__ = [
    "EPOCH_PREFIX",
    "MAX_VALIDATORS",
    "EpochRecord",
    "EpochRule",
    "ValidatorEntry",
    "epoch_at",
    "epoch_key",
    "genesis_epoch",
    "latest_epoch",
    "load_epochs",
    "put_epoch",
    "to_schedule",
]

MAX_VALIDATORS: Final = 64  # the most validators governance lets an epoch have
EPOCH_PREFIX: Final = b"epoch/"


def epoch_key(number: int) -> bytes:
    """``epoch/0000000003``: zero-padded, so key order is epoch order."""
    return EPOCH_PREFIX + f"{number:010d}".encode()


@dataclass(frozen=True)
class EpochRule:
    """Genesis's consensus knobs that place an epoch boundary (``consensus.epochs.boundary``)."""

    checkpoint_interval: int
    watermark_window: int

    @staticmethod
    def of(consensus: Mapping[str, int]) -> EpochRule:
        """The rule of genesis's ``consensus`` knobs."""
        return EpochRule(consensus["checkpoint_interval"], consensus["watermark_window"])

    def first_height(self, committed_height: int) -> int:
        """The first height the new set certifies when a change executes at
        ``committed_height``: one above the first checkpoint height at or after
        ``committed_height + watermark_window``."""
        return boundary(committed_height, self.checkpoint_interval, self.watermark_window) + 1


@dataclass(frozen=True)
class ValidatorEntry:
    """One validator of an epoch: its name, owning member, node key (64 hex) and address."""

    name: str
    member: str
    node_key: str
    p2p: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "member": self.member,
            "node_key": self.node_key,
            "p2p": self.p2p,
        }

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> ValidatorEntry:
        return ValidatorEntry(
            str(obj["name"]), str(obj["member"]), str(obj["node_key"]), str(obj["p2p"])
        )


@dataclass(frozen=True)
class EpochRecord:
    """One epoch as the state holds it (``epoch/<number>``)."""

    epoch: int
    from_height: int
    validators: tuple[ValidatorEntry, ...]
    proposal: str | None  # the governance proposal that made it; None for epoch 0
    committed_height: int  # the height that proposal executed at; 0 for epoch 0

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "from_height": self.from_height,
            "validators": [v.to_json() for v in self.validators],
            "proposal": self.proposal,
            "committed_height": self.committed_height,
        }

    @staticmethod
    def from_json(obj: Mapping[str, Any]) -> EpochRecord:
        return EpochRecord(
            epoch=int(obj["epoch"]),
            from_height=int(obj["from_height"]),
            validators=tuple(ValidatorEntry.from_json(v) for v in obj["validators"]),
            proposal=obj["proposal"],
            committed_height=int(obj["committed_height"]),
        )

    def index_of(self, node_key: str) -> int | None:
        """The position (consensus index) of the validator with this key, or None."""
        for i, v in enumerate(self.validators):
            if v.node_key == node_key:
                return i
        return None


def genesis_epoch(validators: Iterable[Mapping[str, Any]]) -> EpochRecord:
    """Epoch 0: genesis's validators (``Genesis.validators_json()``) from height 1."""
    entries = tuple(ValidatorEntry.from_json(v) for v in validators)
    return EpochRecord(0, 1, entries, None, 0)


def put_epoch(state: BlockState, record: EpochRecord) -> None:
    state.put(epoch_key(record.epoch), record.to_json())


def load_epochs(state: BlockState) -> list[EpochRecord]:
    """Every epoch of the state, in number order (empty before block 1 wrote epoch 0)."""
    return [EpochRecord.from_json(v) for _, v in state.iter_prefix(EPOCH_PREFIX)]


def latest_epoch(state: BlockState) -> EpochRecord | None:
    """The epoch with the highest number (in force now or from a later height)."""
    records = load_epochs(state)
    return records[-1] if records else None


def epoch_at(records: Sequence[EpochRecord], height: int) -> EpochRecord:
    """The epoch that certifies ``height``: the latest whose ``from_height`` <= height
    (epoch 0 for heights below 1). ``records`` in number order, not empty."""
    found = records[0]
    for record in records:
        if record.from_height <= height:
            found = record
    return found


def to_schedule(records: Sequence[EpochRecord]) -> EpochSchedule:
    """The consensus view of the epochs: node keys as bytes, in index order."""
    return EpochSchedule(
        [
            Epoch(r.epoch, r.from_height, tuple(bytes.fromhex(v.node_key) for v in r.validators))
            for r in records
        ]
    )
