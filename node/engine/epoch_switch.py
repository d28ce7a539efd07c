"""One node's consensus across epochs: the replica of the current epoch, or none.

Theory of operation
===================
The validator set changes only at epoch boundaries (consensus/epochs.py): the
set of epoch e certifies heights ``first_height(e) .. first_height(e+1) - 1``.
A ``Replica`` serves exactly one epoch. ``EpochSwitch`` stands where the
drivers (the daemon's ``node.engine.driver``, the simulator) used to hold a
replica: it has the same entry points, sans-IO like the replica, and decides
which replica, if any, each input reaches.

- **Which epoch.** The one that certifies the height after the executed tip,
  per the executed state's schedule (``schedule()``, read after every
  executed block). The replica is built with the epoch's ``n``, base height
  and signing domain, its records (``scoped``: epoch e > 0 keeps its records
  under ``e/<e>/``), and, once the state holds the next epoch, its end.
- **Validator or follower.** A node whose key is not in the epoch's set has no
  replica: it *follows*, taking certified blocks from block sync, checking
  each certificate against the set of the block's epoch and delivering them
  in height order. It never votes.
- **The hand-over.** Once the epoch's last height is executed
  (``Replica.epoch_complete``, or the follower's tip), the next epoch's
  replica is built from the tip and started; the next round starts from it.
  The previous replica is kept, *retired*: it no longer gets timers, requests
  or blocks, but it answers its epoch's messages (a peer still in that epoch
  asks with STATUS, gets ours, learns that f+1 are ahead and fetches the
  blocks), so a validator that missed the end of its epoch is not left alone.
  A view change in progress at the hand-over simply ends: nothing of the old
  epoch is left to decide, since every height of it was delivered.
- **Messages of other epochs.** A message of a later epoch waits (bounded in
  count and bytes, oldest dropped first) until the node reaches that epoch,
  then is handed to its replica; one of an earlier epoch goes to the retired
  replica if it is that epoch's, else is dropped (``Rejected(-1,
  "stale-epoch")``, nobody is blamed: an honest peer may lag).
- **Indices.** A replica names validators by their index in its epoch; every
  action that names one is stamped with the epoch (``consensus/actions.py``),
  and the edges look the key up in the schedule.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from consensus.actions import (
    Action,
    Broadcast,
    Deliver,
    Evidence,
    NeedSync,
    Persist,
    Rejected,
    Relay,
    Send,
)
from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Verifier
from consensus.epochs import Epoch, EpochSchedule
from consensus.messages import CommittedBlock, Message
from consensus.quorum import CertificateError, verify_commit_certificate
from consensus.replica import ChainTip, Replica

__all__ = [
    "FUTURE_BYTES",
    "FUTURE_MESSAGES",
    "EpochSwitch",
    "ReplicaMaker",
    "scoped",
    "unscoped",
]

# messages of later epochs kept for when this node gets there
FUTURE_MESSAGES = 4_096
FUTURE_BYTES = 16 << 20
# blocks a follower keeps above its tip, waiting for the ones below
FOLLOWER_WINDOW = 256


# (config, index in the epoch, the epoch's records, the tip, the epoch's end if known)
ReplicaMaker = Callable[
    [ConsensusConfig, int, Mapping[bytes, bytes], ChainTip, int | None], Replica
]


def _prefix(epoch: int) -> bytes:
    return b"" if epoch == 0 else b"e/%d/" % epoch


def scoped(epoch: int, key: bytes) -> bytes:
    """Where a record of ``epoch``'s replica is stored (epoch 0: as before epochs)."""
    return _prefix(epoch) + key


def unscoped(epoch: int, records: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The records of ``epoch``'s replica, under the keys the replica gave them."""
    if epoch == 0:
        return {k: v for k, v in records.items() if not k.startswith(b"e/")}
    prefix = _prefix(epoch)
    return {k[len(prefix) :]: v for k, v in records.items() if k.startswith(prefix)}


def _weight(msg: Message) -> int:
    payload = getattr(msg, "payload", ())
    return 256 + sum(map(len, payload))


class EpochSwitch:
    """The replica entry points for a node across epochs (module docstring)."""

    def __init__(
        self,
        base: ConsensusConfig,
        me: bytes,
        *,
        schedule: Callable[[], EpochSchedule],
        make_replica: ReplicaMaker,
        verifier_for: Callable[[Epoch], Verifier],
        rules: PayloadRules,
        records: Mapping[bytes, bytes],
        tip: ChainTip,
    ) -> None:
        self._base = base
        self._me = me
        self._schedule_of = schedule
        self._make = make_replica
        self._verifier_for = verifier_for
        self._rules = rules
        self._schedule = schedule()
        self._tip = tip
        self._future: deque[tuple[int, Message]] = deque()
        self._future_bytes = 0
        self._previous: Replica | None = None
        self._follow: dict[int, CommittedBlock] = {}  # follower: blocks above the tip
        self._follow_delivered = tip.height
        self._follow_ts: dict[int, int] = {}  # follower: delivered, not executed yet
        self.epoch = self._schedule.at(tip.height + 1)
        self.replica = self._build(records)

    # ------------------------------------------------------------ the state
    @property
    def schedule(self) -> EpochSchedule:
        return self._schedule

    @property
    def is_validator(self) -> bool:
        return self.replica is not None

    @property
    def view(self) -> int:
        return self.replica.view if self.replica is not None else 0

    @property
    def height(self) -> int:
        return self.replica.height if self.replica is not None else self._follow_delivered

    def config_of(self, epoch: Epoch) -> ConsensusConfig:
        return dataclasses.replace(
            self._base, n=epoch.n, epoch=epoch.number, base_height=epoch.base_height
        )

    def key_of(self, epoch: int, index: int) -> bytes | None:
        """The node key of validator ``index`` in ``epoch`` (None: no such validator,
        or this node; the driver's ``PeerBook``)."""
        epochs = self._schedule.epochs
        if not 0 <= epoch < len(epochs):
            return None
        validators = epochs[epoch].validators
        if not 0 <= index < len(validators) or validators[index] == self._me:
            return None
        return validators[index]

    def others(self, epoch: int) -> list[bytes]:
        """Every validator of ``epoch`` but this node."""
        epochs = self._schedule.epochs
        if not 0 <= epoch < len(epochs):
            return []
        return [k for k in epochs[epoch].validators if k != self._me]

    def _build(self, records: Mapping[bytes, bytes]) -> Replica | None:
        epoch = self.epoch
        me = epoch.index_of(self._me)
        if me is None:
            return None
        return self._make(
            self.config_of(epoch),
            me,
            unscoped(epoch.number, records),
            self._tip,
            self._schedule.end_of(epoch.number),
        )

    # --------------------------------------------------------- entry points
    def start(self, now: int) -> list[Action]:
        if self.replica is None:
            return []
        return self._stamp(self.replica.start(now), self.epoch.number)

    def on_request(self, request: bytes, now: int) -> list[Action]:
        if self.replica is None:
            return []
        return self._stamp(self.replica.on_request(request, now), self.epoch.number)

    def on_timer(self, now: int) -> list[Action]:
        if self.replica is None:
            return []
        return self._stamp(self.replica.on_timer(now), self.epoch.number)

    def on_message(self, msg: Message, now: int, epoch: int = 0) -> list[Action]:
        current = self.epoch.number
        if epoch == current:
            if self.replica is None:
                return []  # a follower does not vote
            return self._stamp(self.replica.on_message(msg, now, epoch), current)
        if epoch > current:
            self._keep_future(epoch, msg)
            return []
        previous = self._previous
        if previous is not None and epoch == previous.config.epoch:
            return self._retired(previous.on_message(msg, now, epoch), epoch)
        return [Rejected(-1, "stale-epoch", epoch)]

    def on_committed_block(self, block: CommittedBlock, now: int) -> list[Action]:
        if self.replica is not None:
            return self._stamp(self.replica.on_committed_block(block, now), self.epoch.number)
        return self._follow_block(block)

    def on_executed(self, height: int, state_root: bytes, now: int) -> list[Action]:
        self._schedule = self._schedule_of()
        end = self._schedule.end_of(self.epoch.number)
        out: list[Action] = []
        if self.replica is not None:
            done = self.replica.on_executed(height, state_root, now, epoch_end=end)
            out = self._stamp(done, self.epoch.number)
            complete = self.replica.epoch_complete
            tip = self.replica.chain_tip()
        else:
            complete = end is not None and height >= end
            tip = ChainTip(height, self._follow_ts.pop(height, self._tip.timestamp), state_root)
            self._tip = tip
            out.extend(self._deliver_followed())
        if complete:
            out.extend(self._hand_over(tip, now))
        return out

    # ------------------------------------------------------------ hand-over
    def _hand_over(self, tip: ChainTip, now: int) -> list[Action]:
        if self.replica is not None:
            self._previous = self.replica
        self._tip = tip
        self._follow_delivered = tip.height
        self._follow_ts = {}
        kept, self._follow = self._follow, {}
        self.epoch = self._schedule.at(tip.height + 1)
        self.replica = self._build({})
        out = self.start(now)
        if self._previous is not None:
            # requests still waiting for a block: the new set orders them
            for request in self._previous.pending_requests():
                out.extend(self.on_request(request, now))
        # blocks a follower fetched beyond the end go on where they belong now
        for h in sorted(kept):
            out.extend(self.on_committed_block(kept[h], now))
        waiting, self._future = self._future, deque()
        self._future_bytes = 0
        for epoch, msg in waiting:
            out.extend(self.on_message(msg, now, epoch))
        return out

    def _keep_future(self, epoch: int, msg: Message) -> None:
        weight = _weight(msg)
        self._future.append((epoch, msg))
        self._future_bytes += weight
        while len(self._future) > FUTURE_MESSAGES or self._future_bytes > FUTURE_BYTES:
            _e, old = self._future.popleft()
            self._future_bytes -= _weight(old)

    # ------------------------------------------------------------- follower
    def _follow_block(self, block: CommittedBlock) -> list[Action]:
        h = block.height
        if h <= self._follow_delivered or h > self._follow_delivered + FOLLOWER_WINDOW:
            return []
        self._follow[h] = block
        return self._deliver_followed()

    def _deliver_followed(self) -> list[Action]:
        """Hand on, in height order, the blocks whose certificates check out under
        their epoch's set (known for every height up to the horizon)."""
        out: list[Action] = []
        # not beyond our epoch's end: its last block executed, the node may become a
        # validator, whose replica then takes the blocks from there
        last = self._schedule.end_of(self.epoch.number)
        while (block := self._follow.pop(self._follow_delivered + 1, None)) is not None:
            if last is not None and block.height > last:
                self._follow[block.height] = block
                break
            epoch = self._schedule.at(block.height)
            end = self._schedule.end_of(epoch.number)
            if end is None and block.height > self._tip.height + self._base.watermark_window + 1:
                self._follow[block.height] = block  # its set is not known yet
                break
            try:
                self._check_block(epoch, block)
            except CertificateError as exc:
                out.append(Rejected(-1, f"bad-sync-block: {exc}"))
                break
            self._follow_delivered = block.height
            self._follow_ts[block.height] = block.proposal.timestamp
            out.append(Deliver(block))
        return out

    def _check_block(self, epoch: Epoch, block: CommittedBlock) -> None:
        config = self.config_of(epoch)
        p = block.proposal
        if p.chain_id != config.chain_id:
            raise CertificateError("block of another chain")
        if self._rules.payload_root(block.payload) != p.payload_root:
            raise CertificateError("payload does not match its root")
        verify_commit_certificate(config, self._verifier_for(epoch), p, block.certificate)

    # ------------------------------------------------------------- stamping
    @staticmethod
    def _stamp(actions: Sequence[Action], epoch: int) -> list[Action]:
        """Name the epoch in every action that names a validator by index."""
        if epoch == 0:
            return list(actions)
        out: list[Action] = []
        for a in actions:
            if isinstance(a, Send | Broadcast | Relay | NeedSync | Evidence | Rejected):
                out.append(dataclasses.replace(a, epoch=epoch))
            elif isinstance(a, Persist) and epoch:
                out.append(Persist(tuple((scoped(epoch, k), v) for k, v in a.records)))
            else:
                out.append(a)
        return out

    def _retired(self, actions: Sequence[Action], epoch: int) -> list[Action]:
        """What a retired replica may still do: answer its epoch's peers, persist."""
        kept = [a for a in actions if isinstance(a, Send | Broadcast | Persist | Evidence)]
        return self._stamp(kept, epoch)
