"""One simulated node: its clock, durable store, replica (while up) and timer state."""

from __future__ import annotations

from consensus.crypto import Signer
from node.sim.byzantine import Behaviour
from node.sim.clock import NodeClock
from node.sim.replicas import SimReplica
from node.sim.store import DurableStore


class SimNode:
    __slots__ = (
        "behaviour",
        "clock",
        "honest",
        "id",
        "peers",
        "replica",
        "signer",
        "store",
        "sync_until",
        "timer_queued",
        "timer_token",
        "timer_vt",
        "up",
    )

    def __init__(
        self,
        node_id: int,
        n: int,
        clock: NodeClock,
        store: DurableStore,
        signer: Signer,
        behaviour: Behaviour | None,
    ) -> None:
        self.id = node_id
        self.peers = tuple(i for i in range(n) if i != node_id)
        self.clock = clock
        self.store = store
        self.signer = signer
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.replica: SimReplica | None = None
        self.up = False
        # the replica's latest SetTimer, in virtual time (None: no timer wanted)
        self.timer_vt: int | None = None
        # virtual time of the queued timer event that carries ``timer_token``
        self.timer_queued: int | None = None
        self.timer_token = 0
        self.sync_until = 0

    def crash(self) -> None:
        """Lose everything that is not in the store."""
        self.up = False
        self.replica = None
        self.timer_vt = None
        self.timer_queued = None
        self.timer_token += 1
        self.sync_until = 0
