"""One simulated node: its clock, durable store, replica (while up), timer and driver state.

The driver state is what the daemon's driver holds in memory around the
driver's core (node/engine/core.py): the inputs waiting for the next round
and the round whose synced write is in flight. A crash loses both.
"""

from __future__ import annotations

from collections import deque

from consensus.crypto import Signer
from node.engine.core import Input, Round
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
        "inbox",
        "life",
        "peers",
        "replica",
        "signer",
        "store",
        "sync_until",
        "timer_queued",
        "timer_token",
        "timer_vt",
        "up",
        "writing",
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
        # inputs waiting for the next round (they wait while a write is in flight)
        self.inbox: deque[Input] = deque()
        # the round whose write is in flight: its messages and blocks wait for it
        self.writing: Round | None = None
        # bumped by every crash: a write completing for an earlier life is void
        self.life = 0

    def crash(self) -> None:
        """Lose everything that is not in the store."""
        self.up = False
        self.replica = None
        self.timer_vt = None
        self.timer_queued = None
        self.timer_token += 1
        self.sync_until = 0
        self.inbox.clear()
        self.writing = None
        self.life += 1
