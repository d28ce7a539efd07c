"""What the simulator needs from a replica, and how it builds the real one.

The simulator drives anything that has the entry points of
``consensus.replica.Replica`` (those the driver's core feeds, and ``start``);
tests may plug in a simpler stand-in through a ``ReplicaKit``. ``real_kit()``
builds the real replica, restarting it from the persisted records and the
chain tip after a crash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from consensus.actions import Action
from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Signer, Verifier
from node.engine.core import ReplicaInputs


class SimReplica(ReplicaInputs, Protocol):
    """The entry points the driver's core feeds, ``start``, and what the report shows."""

    @property
    def view(self) -> int: ...

    @property
    def height(self) -> int: ...

    def start(self, now: int) -> Sequence[Action]: ...


# (height, timestamp, state root) of the last executed block
Tip = tuple[int, int, bytes]
Records = Mapping[bytes, bytes]
# (config, me, signer, verifier, rules, persisted records or None, tip or None)
ReplicaFactory = Callable[
    [ConsensusConfig, int, Signer, Verifier, PayloadRules, Records | None, Tip | None],
    SimReplica,
]


@dataclass(frozen=True)
class ReplicaKit:
    factory: ReplicaFactory
    genesis_root: bytes


# the simulated app-state root before the first block (any constant will do)
GENESIS_ROOT = hashlib.sha256(b"hygeia-sim/genesis").digest()


def real_kit() -> ReplicaKit:
    from consensus.replica import ChainTip, Replica

    def make(
        config: ConsensusConfig,
        me: int,
        signer: Signer,
        verifier: Verifier,
        rules: PayloadRules,
        records: Mapping[bytes, bytes] | None,
        tip: Tip | None,
    ) -> SimReplica:
        chain_tip = None if tip is None else ChainTip(*tip)
        return Replica(config, me, signer, verifier, rules, records=records, tip=chain_tip)

    return ReplicaKit(make, GENESIS_ROOT)
