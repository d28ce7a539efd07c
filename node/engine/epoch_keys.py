"""What the daemon knows of each epoch's validator set: configs, verifiers, who may speak.

The executed state holds the epochs (``node/ledger/validators.py``,
consensus/epochs.py); the daemon refreshes ``EpochKeys`` from it after every
block. From it come:

- ``config_of(epoch)``: the replica's config for that set (n, epoch number,
  base height; the knobs are genesis's);
- ``signatures(epoch)``: the verify pool's ``PreverifiedSignatures`` for that
  set (consensus messages and sync certificates are checked in the pool with
  it), kept for the few latest epochs;
- ``certifier(height, executed)``: the config and verifier that certify a
  block at ``height``, or None while that height is beyond what the executed
  state can tell (its horizon: a change may still commit below it);
- ``index_of(epoch, key)``: whether a consensus message of ``epoch`` from the
  peer ``key`` may carry the sender index it carries.
"""

from __future__ import annotations

import dataclasses

from consensus.config import ConsensusConfig
from consensus.epochs import Epoch, EpochSchedule, horizon
from node.core.keys import ValidatorVerifier
from node.net.signatures import PreverifiedSignatures

# verifiers kept for this many of the latest epochs (older ones are rebuilt if needed)
KEPT_EPOCHS = 4


class EpochKeys:
    def __init__(
        self,
        base: ConsensusConfig,
        schedule: EpochSchedule,
        genesis: PreverifiedSignatures | None = None,
    ) -> None:
        self._base = base
        self._schedule = schedule
        # epoch 0's may be given (the daemon's own, which its metrics read)
        self._signatures: dict[int, PreverifiedSignatures] = {0: genesis} if genesis else {}

    @property
    def schedule(self) -> EpochSchedule:
        return self._schedule

    def refresh(self, schedule: EpochSchedule) -> bool:
        """Take the executed state's schedule; True when it holds a new epoch."""
        grew = len(schedule) != len(self._schedule)
        self._schedule = schedule
        return grew

    def config_of(self, epoch: Epoch) -> ConsensusConfig:
        return dataclasses.replace(
            self._base, n=epoch.n, epoch=epoch.number, base_height=epoch.base_height
        )

    def signatures(self, epoch: Epoch) -> PreverifiedSignatures:
        got = self._signatures.get(epoch.number)
        if got is None:
            keys = list(epoch.validators)
            got = self._signatures[epoch.number] = PreverifiedSignatures(
                ValidatorVerifier(keys), keys
            )
            for old in sorted(self._signatures)[:-KEPT_EPOCHS]:
                del self._signatures[old]
        return got

    def epoch(self, number: int) -> Epoch | None:
        epochs = self._schedule.epochs
        return epochs[number] if 0 <= number < len(epochs) else None

    def certifier(
        self, height: int, executed: int
    ) -> tuple[ConsensusConfig, PreverifiedSignatures] | None:
        epoch = self._schedule.at(height)
        if self._schedule.end_of(epoch.number) is None and height > horizon(
            executed, self._base.watermark_window
        ):
            return None
        return self.config_of(epoch), self.signatures(epoch)

    def index_of(self, number: int, key: bytes) -> int | None:
        epoch = self.epoch(number)
        return epoch.index_of(key) if epoch is not None else None

    def current_keys(self, executed: int) -> set[bytes]:
        """The validators of the set in force for the next block and of any later one."""
        keys: set[bytes] = set()
        first = self._schedule.at(executed + 1).number
        for epoch in self._schedule.epochs[first:]:
            keys.update(epoch.validators)
        return keys
