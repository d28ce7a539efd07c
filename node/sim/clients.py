"""The simulated clients: when the workload's transactions are submitted, and to whom.

Open loop: the next arrival is scheduled when one is submitted (evenly spaced,
or after a uniform gap). Closed loop: each client submits one transaction and
the next one ``think_ms`` after its transaction is first committed. Clients
broadcast: every transaction is handed to every node as a request event after
its own ``client_latency`` delay. What the transactions are and when arrivals
fall is ``node.sim.workload``; the stop of the workload is reported to the
engine (``over``), which decides when the run is done.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from consensus.messages import CommittedBlock
from node.sim.events import REQUEST, EventQueue
from node.sim.invariants import InvariantChecker
from node.sim.metrics import Metrics
from node.sim.network import Network
from node.sim.workload import Workload


class Clients:
    """The clients of one run, submitting ``workload``'s transactions to ``n`` nodes."""

    __slots__ = ("checker", "metrics", "n", "network", "over", "queue", "workload")

    def __init__(
        self,
        workload: Workload,
        n: int,
        network: Network,
        queue: EventQueue,
        metrics: Metrics,
        checker: InvariantChecker,
        over: Callable[[], None],
    ) -> None:
        self.workload = workload
        self.n = n
        self.network = network
        self.queue = queue
        self.metrics = metrics
        self.checker = checker
        # called when a client finds the workload exhausted
        self.over = over

    def schedule(self) -> None:
        """The first transactions: of every closed-loop client, or the first arrival."""
        w = self.workload.spec
        at = w.start_ms
        if w.mode == "closed":
            for c in range(w.clients):
                self.queue.call_at(at, partial(self.client_tx, c, at))
        else:
            self.queue.call_at(at, partial(self.open_arrival, 0, at))

    def open_arrival(self, k: int, vt: int) -> None:
        """The ``k``-th open-loop arrival (at ``vt``), and the next one scheduled."""
        wl = self.workload
        if wl.exhausted(vt):
            self.over()
            return
        self.submit(wl.new_tx(vt), vt)
        if wl.spec.arrival == "fixed":
            nxt = max(vt, wl.open_arrival(k + 1))
        else:
            nxt = vt + wl.uniform_gap()
        self.queue.call_at(nxt, partial(self.open_arrival, k + 1, nxt))

    def client_tx(self, client: int, vt: int) -> None:
        """Closed-loop ``client`` sends its next transaction."""
        if not self.workload.exhausted(vt):
            self.submit(self.workload.new_tx(vt, client), vt)
        else:
            self.over()

    def submit(self, tx: bytes, vt: int) -> None:
        """``tx`` to every node, each after its own client delay."""
        self.metrics.txs_submitted += 1
        self.checker.last_submit = vt
        push = self.queue.push
        for i in range(self.n):
            push(vt + self.network.client_delay(), REQUEST, i, tx)

    def committed(self, block: CommittedBlock, vt: int) -> None:
        """``block`` was committed by an honest node for the first time: its
        transactions' latencies, and their closed-loop clients think and go on."""
        m = self.metrics
        m.txs_committed += len(block.payload)
        think = self.workload.spec.think_ms
        for tx in block.payload:
            latency, client = self.workload.committed(tx, vt)
            if latency is not None:
                m.latencies.append(latency)
            if client >= 0:
                at = vt + think
                self.queue.call_at(at, partial(self.client_tx, client, at))
