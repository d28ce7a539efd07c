"""Epochs: which validator set certifies which heights, and when a change takes effect.

The validator set is chain state (docs/governance.md, "Validators"). A change
committed at height h does not take effect at once: heights above h may
already be proposed, voted on or committed by the set in force (pipelining,
and the watermark window of every replica). It takes effect at an *epoch
boundary*: the old set certifies every height up to and including
``boundary(h)``, the new set every height from ``boundary(h) + 1``.

The rule
--------
``boundary(h)`` is the first checkpoint height (a multiple of K, the
checkpoint interval) at or above ``h + L`` (L, the watermark window).

Why no height straddles two sets
--------------------------------
A replica that executed every block up to e knows every change committed at
or below e. A change it does not know yet commits at some h >= e + 1, so it
takes effect at ``boundary(h) + 1 >= e + L + 2``: the set of every height up
to ``e + L + 1`` (its *horizon*) is known to it. A replica votes only inside
its watermarks and its horizon, and, once it knows its epoch ends at c, never
above c. So no honest replica ever votes for a height under a set other than
that height's own, and a certificate made of a quorum of one set's votes at a
height is that height's certificate. Two certificates for one height therefore
come from the same set, whose quorums intersect in an honest replica: the
single-set safety argument of the replica (``replica.py``) applies per height.

The boundary is a checkpoint height, so the new epoch starts from a state
root (the old set's checkpoint at c) that every replica reaching it computed
itself from certified blocks; the new set's replicas start with c as their
low watermark, as every replica starts from genesis at height 0.

Messages are signed under the epoch's own domain (``signing_domain``), so a
vote of one epoch can never count in another, even where a validator keeps
its index.

Epoch 0 is genesis's validator set, from height 1.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Epoch",
    "EpochError",
    "EpochSchedule",
    "boundary",
    "horizon",
    "signing_domain",
]


class EpochError(ValueError):
    """An epoch schedule that breaks the rules above."""


def boundary(committed_height: int, checkpoint_interval: int, watermark_window: int) -> int:
    """The last height the set in force certifies when a change commits at
    ``committed_height``: the first multiple of the checkpoint interval at or
    above ``committed_height + watermark_window``."""
    if committed_height < 1:
        raise EpochError(f"a change commits at a height >= 1, not {committed_height}")
    k = checkpoint_interval
    at_least = committed_height + watermark_window
    return -(-at_least // k) * k


def horizon(executed: int, watermark_window: int) -> int:
    """The highest height whose validator set a replica that executed ``executed``
    knows for sure (see the module docstring)."""
    return executed + watermark_window + 1


def signing_domain(chain_id: str, epoch: int) -> str:
    """What a message of ``epoch`` is signed under (genesis's epoch: the chain id)."""
    return chain_id if epoch == 0 else f"{chain_id}/epoch/{epoch}"


@dataclass(frozen=True)
class Epoch:
    """One validator set and the first height it certifies.

    ``validators`` are node public keys (32 bytes); a validator's consensus
    index in this epoch is its position in the tuple.
    """

    number: int
    first_height: int
    validators: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if self.number < 0 or self.first_height < 1:
            raise EpochError(f"epoch {self.number} from height {self.first_height}")
        if not self.validators:
            raise EpochError(f"epoch {self.number} has no validator")
        if len(set(self.validators)) != len(self.validators):
            raise EpochError(f"epoch {self.number} names a validator twice")

    @property
    def base_height(self) -> int:
        """The height below the first: this set's replicas start with it as their
        low watermark (genesis: 0)."""
        return self.first_height - 1

    @property
    def n(self) -> int:
        return len(self.validators)

    def index_of(self, node_key: bytes) -> int | None:
        """The key's consensus index in this epoch, or None for a non-validator."""
        try:
            return self.validators.index(node_key)
        except ValueError:
            return None


class EpochSchedule:
    """Every epoch so far, in order: epoch i starts where epoch i-1 ends.

    Immutable: ``with_epoch`` returns a longer schedule.
    """

    def __init__(self, epochs: Sequence[Epoch]) -> None:
        if not epochs:
            raise EpochError("a schedule needs genesis's epoch")
        for i, e in enumerate(epochs):
            if e.number != i:
                raise EpochError(f"epoch {e.number} at position {i}")
            if i == 0 and e.first_height != 1:
                raise EpochError("epoch 0 starts at height 1")
            if i > 0 and e.first_height <= epochs[i - 1].first_height:
                raise EpochError(f"epoch {i} does not start after epoch {i - 1}")
        self._epochs = tuple(epochs)
        self._starts = [e.first_height for e in self._epochs]

    @classmethod
    def genesis(cls, validators: Sequence[bytes]) -> EpochSchedule:
        return cls([Epoch(0, 1, tuple(validators))])

    def with_epoch(self, epoch: Epoch) -> EpochSchedule:
        return EpochSchedule([*self._epochs, epoch])

    @property
    def epochs(self) -> tuple[Epoch, ...]:
        return self._epochs

    @property
    def latest(self) -> Epoch:
        return self._epochs[-1]

    def at(self, height: int) -> Epoch:
        """The epoch whose set certifies ``height`` (as far as this schedule knows)."""
        if height < 1:
            return self._epochs[0]
        return self._epochs[bisect.bisect_right(self._starts, height) - 1]

    def end_of(self, number: int) -> int | None:
        """The last height of epoch ``number``, or None while it has no successor."""
        if number + 1 < len(self._epochs):
            return self._epochs[number + 1].first_height - 1
        return None

    def __len__(self) -> int:
        return len(self._epochs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EpochSchedule) and self._epochs == other._epochs

    def __hash__(self) -> int:
        return hash(self._epochs)
