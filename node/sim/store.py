"""The in-memory stand-in for a node's durable storage.

It holds exactly what survives a simulated crash: the replica's persisted
records (``Persist`` upserts, ``None`` deletes) and the committed chain with
the simulated app-state root after each block. The replica object and
everything else in memory is lost on a crash; a restart hands the replica a
copy of ``records`` and the ``tip`` of ``chain``.

The simulated app state is only a hash chain of the committed proposals:
``root(h) = SHA-256(root(h-1) || digest(h))``, ``root(0) = genesis_root``,
and, in a run with validator changes, the epoch schedule: a committed
``change_tx`` (the simulator's stand-in for the governance vote) starts a new
epoch at the boundary after its block (consensus/epochs.py), unless a change
is in flight, exactly as the ledger does. Node i's key is ``node_key(i)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from consensus.epochs import Epoch, EpochSchedule, boundary
from consensus.messages import CommittedBlock

CHANGE_TX = b"tx:epoch:"


def node_key(i: int) -> bytes:
    """Simulated node i's key, as epochs name validators."""
    return i.to_bytes(4, "big")


def node_of(key: bytes) -> int:
    return int.from_bytes(key, "big")


def change_tx(seq: int, validators: Iterable[int]) -> bytes:
    """The transaction that asks for the validator set ``validators`` (node ids)."""
    return CHANGE_TX + b"%d:" % seq + b",".join(b"%d" % v for v in validators)


def _change_of(tx: bytes) -> tuple[bytes, ...] | None:
    if not tx.startswith(CHANGE_TX):
        return None
    _seq, _, ids = tx[len(CHANGE_TX) :].partition(b":")
    return tuple(node_key(int(v)) for v in ids.split(b","))


def next_schedule(
    schedule: EpochSchedule,
    height: int,
    payload: tuple[bytes, ...],
    checkpoint_interval: int,
    watermark_window: int,
) -> EpochSchedule:
    """The schedule after executing block ``height``: the first change in it, if no
    change is in flight, starts an epoch after ``boundary(height)``."""
    for tx in payload:
        validators = _change_of(tx)
        if validators is None or schedule.latest.first_height > height:
            continue
        first = boundary(height, checkpoint_interval, watermark_window) + 1
        schedule = schedule.with_epoch(Epoch(len(schedule), first, validators))
    return schedule


class DurableStore:
    __slots__ = ("chain", "epoch_knobs", "records", "roots", "schedule")

    def __init__(
        self,
        genesis_root: bytes,
        schedule: EpochSchedule | None = None,
        epoch_knobs: tuple[int, int] = (16, 64),
    ) -> None:
        self.records: dict[bytes, bytes] = {}
        self.chain: list[CommittedBlock] = []
        self.roots: list[bytes] = [genesis_root]
        # the validator sets so far, in a run with changes (None: no changes)
        self.schedule = schedule
        self.epoch_knobs = epoch_knobs  # (checkpoint interval, watermark window)

    @property
    def height(self) -> int:
        return len(self.chain)

    def persist(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        recs = self.records
        for key, value in records:
            if value is None:
                recs.pop(key, None)
            else:
                recs[key] = value

    def append(self, block: CommittedBlock, digest: bytes) -> bytes:
        """Execute ``block`` (the next height): append it and return the new state root."""
        root = hashlib.sha256(self.roots[-1] + digest).digest()
        self.chain.append(block)
        self.roots.append(root)
        if self.schedule is not None:
            k, w = self.epoch_knobs
            self.schedule = next_schedule(self.schedule, len(self.chain), block.payload, k, w)
        return root

    def tip(self) -> tuple[int, int, bytes]:
        """(height, timestamp, state root) of the last executed block."""
        if not self.chain:
            return 0, 0, self.roots[0]
        return len(self.chain), self.chain[-1].proposal.timestamp, self.roots[-1]

    def blocks_after(self, height: int, limit: int) -> tuple[CommittedBlock, ...]:
        return tuple(self.chain[height : height + limit])
