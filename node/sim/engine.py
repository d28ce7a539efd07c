"""The deterministic discrete-event engine that drives real replicas.

One heap of events keyed ``(virtual ms, sequence number)``; one
``random.Random(seed)`` for every random choice (network, workload,
Byzantine splits, sync peers, crashes during a write). Each node runs the
daemon's driver core (``node.engine.core``): every input (a message, a
request, a timer, a synced block, an executed block) waits in the node's
inbox while a write is in flight; otherwise the inputs waiting form a round,
fed to the replica one by one at the node's drifting local time, and the
round's actions are carried out in the core's order, with this module at the
edges:

- the round's write (every ``Persist`` of the round in one batch) takes
  ``write_ms`` of virtual time, then lands in the node's ``DurableStore``;
  the messages and blocks that wait for it are carried out then, and the
  inputs that arrived meanwhile form the next round (group commit);
- ``transmit``: ``Send``/``Broadcast`` pass through the node's Byzantine
  behaviour (if any) and the network model, and become message events;
  ``Relay`` hands the requests to the primary over the network;
- ``execute``: the block is appended to the store, feeds the invariant
  checker and comes back as an ``OnExecuted`` input;
- ``arm_timer``: only the latest deadline per node counts;
- ``need_sync``: a sync request to up to f+1 hinted peers, whose nodes
  answer with the committed blocks above the requester's height
  (``node.sim.sync``, with the status heartbeat of ``status_sync``).

Crashes and restarts, partitions and heals, drop faults
(``node.sim.faults``) and client submissions (``node.sim.clients``) are
scheduled events on the queue (``node.sim.events``). A crash
keeps the ``DurableStore`` and drops the replica and the driver's memory: a
write in flight reaches the disk or not (a seeded coin), and the messages
and blocks waiting for it are lost either way. A restart builds a new replica
from a copy of the persisted records and the chain tip.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import cast

from consensus.actions import (
    Action,
    Broadcast,
    Divergence,
    Evidence,
    Rejected,
    Relay,
    Send,
    ViewChanged,
)
from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from consensus.epochs import Epoch, EpochSchedule
from consensus.messages import (
    CommittedBlock,
    Message,
    NewView,
    PrePrepare,
    decode_message,
    encode_message,
)
from consensus.replica import ChainTip, Replica
from node.engine.core import (
    MAX_INPUTS_PER_ROUND,
    Input,
    Note,
    OnExecuted,
    OnMessage,
    OnRequest,
    OnTimer,
    Outbound,
    carry_out,
    feed,
    plan,
)
from node.engine.epoch_switch import EpochSwitch
from node.sim.byzantine import make_behaviour
from node.sim.clients import Clients
from node.sim.clock import NodeClock
from node.sim.crypto import Ed25519Scheme, IndexedVerifier, KeyedHashScheme, SimPayloadRules
from node.sim.events import CALL, MSG, REQUEST, STATUS, SYNC_REQ, TIMER, WRITTEN, EventQueue
from node.sim.faults import Delays, Faults
from node.sim.invariants import InvariantChecker, Verdict
from node.sim.metrics import MESSAGE_NAMES, Metrics
from node.sim.network import FrameLimit, Network
from node.sim.node import SimNode
from node.sim.replicas import ReplicaKit, real_kit
from node.sim.scenario import Fault, Scenario, ValidatorChange
from node.sim.store import DurableStore, change_tx, next_schedule, node_key, node_of
from node.sim.sync import BlockSync, StatusSync, SyncRequest, SyncResponse
from node.sim.workload import Workload

# virtual ms a node's synced write of one round's records takes (an SSD fsync)
WRITE_MS = 1
_ON_TIMER = OnTimer()


class Simulation:
    """One run of one scenario with one seed."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        kit: ReplicaKit | None = None,
        *,
        write_ms: int = WRITE_MS,
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.write_ms = write_ms
        self.kit = kit or real_kit()
        self.rng = random.Random(seed)
        self.config = scenario.consensus_config()
        n = self.n = scenario.n
        scheme: Ed25519Scheme | KeyedHashScheme = (
            Ed25519Scheme(n, seed) if scenario.crypto == "ed25519" else KeyedHashScheme(n, seed)
        )
        self.verifier: Verifier = scheme.verifier()
        self.rules = SimPayloadRules()
        self.network = Network(scenario.network, n, self.rng)
        self.metrics = Metrics()
        self.workload = Workload(scenario.workload, self.rng)
        self.wire = scenario.wire
        self.now = 0
        self.events = 0
        self.queue = EventQueue()
        self._names = MESSAGE_NAMES

        byz = scenario.byzantine_nodes()
        drift = {d.node: d for d in scenario.drift}
        self.nodes: list[SimNode] = []
        for i in range(n):
            d = drift.get(i)
            clock = NodeClock(
                scenario.clock_epoch_ms, d.offset_ms if d else 0, d.rate_ppm if d else 0
            )
            signer = scheme.signer(i)
            spec = byz.get(i)
            behaviour = (
                make_behaviour(
                    spec,
                    self.config,
                    signer,
                    self.rules,
                    self.rng,
                    max_frame_bytes=scenario.network.max_frame_bytes,
                )
                if spec
                else None
            )
            store = DurableStore(self.kit.genesis_root, *self._genesis_schedule())
            self.nodes.append(SimNode(i, n, clock, store, signer, behaviour))
        self._edges = [NodeEdges(self, node) for node in self.nodes]

        lost = set(scenario.permanently_crashed())
        self.live_targets = [i for i in range(n) if i not in byz and i not in lost]
        self.checker = InvariantChecker(
            self.config,
            self.verifier,
            self.rules,
            liveness_after=scenario.last_fault_end(),
            liveness_bound=scenario.liveness_bound(),
            liveness_nodes=self.live_targets,
            liveness_applicable=scenario.liveness_applicable(self.config.f),
            honest=[i for i in range(n) if i not in byz],
            stop_at_height=scenario.stop_at_height,
            quiescent=bool(scenario.workload.stop_ms or scenario.workload.max_txs),
        )
        self.faults = Faults(n, self.network)
        self._recheck_at = -1
        # frames over max_frame_bytes are dropped; an honest sender of one breaks frame_size
        self.frames = FrameLimit(scenario.network.max_frame_bytes)
        self.frame_verdict = self.checker.verdicts.setdefault("frame_size", Verdict())
        self.sync = BlockSync(
            scenario.network,
            self.config.f,
            self.nodes,
            rng=self.rng,
            queue=self.queue,
            link=self.faults.link,
            frames=self.frames,
            wire=self.wire,
            metrics=self.metrics,
            feed=self._input,
            oversized=self._oversized,
        )
        self.status = StatusSync(
            scenario.network,
            self.nodes,
            queue=self.queue,
            link=self.faults.link,
            metrics=self.metrics,
            ask=self._need_sync,
        )
        self.clients = Clients(
            self.workload,
            n,
            self.network,
            self.queue,
            self.metrics,
            self.checker,
            self._workload_over,
        )
        self._target_set = frozenset(self.live_targets)
        self._reached = 0
        self._check_done = False
        self.faults.schedule(scenario.faults, self.queue, self.crash, self.restart)
        self.clients.schedule()
        # a run with validator changes: each node follows the executed schedule
        # through an EpochSwitch; the checker learns the sets from the first commits
        self._truth = self._genesis_schedule()[0]
        self._members: dict[tuple[bytes, ...], tuple[int, ...]] = {}
        if self._truth is not None:
            self.checker.certifier = self._certifier
        for seq, change in enumerate(scenario.validator_changes):
            self.call_at(change.at_ms, partial(self._submit_change, seq, change))

    # -- epochs -----------------------------------------------------------------

    def _genesis_schedule(self) -> tuple[EpochSchedule | None, tuple[int, int]]:
        cfg = self.config
        knobs = (cfg.checkpoint_interval, cfg.watermark_window)
        s = self.scenario
        if not (s.validator_changes or s.validators):
            return None, knobs
        genesis = EpochSchedule.genesis([node_key(i) for i in range(s.genesis_validators)])
        return genesis, knobs

    @property
    def epochs(self) -> bool:
        return self._truth is not None

    def _nodes_of(self, validators: tuple[bytes, ...]) -> tuple[int, ...]:
        got = self._members.get(validators)
        if got is None:
            got = self._members[validators] = tuple(node_of(k) for k in validators)
        return got

    def _epoch_nodes(self, node: SimNode, epoch: int) -> tuple[int, ...]:
        """Node ids of ``epoch``'s validators as ``node`` knows them (() if unknown)."""
        switch = node.replica
        assert isinstance(switch, EpochSwitch)
        epochs = switch.schedule.epochs
        return self._nodes_of(epochs[epoch].validators) if epoch < len(epochs) else ()

    def _certifier(self, height: int) -> tuple[str, int, Verifier]:
        assert self._truth is not None
        epoch = self._truth.at(height)
        cfg = dataclasses.replace(self.config, n=epoch.n, epoch=epoch.number)
        nodes = self._nodes_of(epoch.validators)
        return cfg.signing_domain, cfg.quorum, IndexedVerifier(self.verifier, nodes)

    def _submit_change(self, seq: int, change: ValidatorChange) -> None:
        self.clients.submit(change_tx(seq, change.validators), self.now)

    def _make_switch(self, node: SimNode, restart: bool) -> EpochSwitch:
        store = node.store
        assert store.schedule is not None

        def make(
            config: ConsensusConfig,
            me: int,
            records: Mapping[bytes, bytes],
            tip: ChainTip,
            epoch_end: int | None,
        ) -> Replica:
            assert store.schedule is not None
            nodes = self._nodes_of(store.schedule.epochs[config.epoch].validators)
            verifier = IndexedVerifier(self.verifier, nodes)
            return Replica(
                config,
                me,
                node.signer,
                verifier,
                self.rules,
                records=records,
                tip=tip,
                epoch_end=epoch_end,
            )

        def verifier_for(epoch: Epoch) -> Verifier:
            return IndexedVerifier(self.verifier, self._nodes_of(epoch.validators))

        def schedule() -> EpochSchedule:
            assert store.schedule is not None
            return store.schedule

        return EpochSwitch(
            self.config,
            node_key(node.id),
            schedule=schedule,
            make_replica=make,
            verifier_for=verifier_for,
            rules=self.rules,
            records=dict(store.records) if restart else {},
            tip=ChainTip(*store.tip()) if restart else ChainTip(0, 0, b""),
        )

    # -- scheduling ------------------------------------------------------------

    def call_at(self, at: int, fn: Callable[[], None]) -> None:
        self.queue.call_at(at, fn)

    def _link(self, name: str) -> Delays:
        """The delays of a message called ``name``, with the drop faults in force."""
        return self.faults.link(name)

    def _set_drop(self, fault: Fault, on: bool) -> None:
        """The drop ``fault`` starts (``on``) or ends, at once."""
        self.faults.set_drop(fault, on)

    @property
    def peer_heights(self) -> list[dict[int, int]]:
        """status_sync: per node, the heights its peers announced."""
        return self.status.peer_heights

    def _status_check(self, node: SimNode, vt: int) -> None:
        """status_sync: whether ``node`` is behind its peers' announcements, and if so sync."""
        self.status.check(node, vt)

    # -- the loop --------------------------------------------------------------

    def run(self) -> Simulation:
        for node in self.nodes:
            self._start(node)
        if self.scenario.network.status_sync:
            self.status.start(self.rng)
        q = self.queue.heap
        pop = heapq.heappop
        end = self.scenario.duration_ms
        nodes = self.nodes
        while q:
            if q[0][0] > end:
                self.now = end
                break
            vt, _, kind, i, payload = pop(q)
            self.now = vt
            self.events += 1
            if kind == MSG:
                node = nodes[i]
                if node.up:
                    self._on_message(node, payload, vt)
            elif kind == TIMER:
                self._on_timer(nodes[i], payload, vt)
            elif kind == REQUEST:
                node = nodes[i]
                if node.up:
                    assert isinstance(payload, bytes)
                    if node.honest:
                        self.checker.on_request(payload, vt)
                    self._input(node, OnRequest(payload), vt)
            elif kind == WRITTEN:
                self._written(nodes[i], payload, vt)
            elif kind == CALL:
                assert callable(payload)
                payload()
            elif kind == SYNC_REQ:
                assert isinstance(payload, SyncRequest)
                self.sync.on_request(nodes[i], payload, vt)
            elif kind == STATUS:
                assert isinstance(payload, tuple)
                self.status.on_status(nodes[i], payload[0], payload[1], vt)
            else:
                assert isinstance(payload, SyncResponse)
                self.sync.on_response(nodes[i], payload, vt)
            if self._check_done and self._done():
                break
        up = {node.id: node.store.height for node in nodes if node.honest and node.up}
        self.checker.finish(self.now, up, self.workload.exhausted(self.now))
        if self._truth is not None:
            epochs = {
                node.id: node.replica.epoch.number
                for node in nodes
                if node.honest and node.up and isinstance(node.replica, EpochSwitch)
            }
            want = 1 + len(self.scenario.validator_changes)
            self.checker.finish_epochs(want, len(self._truth), epochs)
        else:
            self.checker.finish_epochs(1, 1, {})
        return self

    def _done(self) -> bool:
        self._check_done = False
        if not (
            self._reached >= len(self._target_set)
            and self.now >= self.checker.liveness_after
            and self.checker.liveness_satisfied()
        ):
            return False
        if not self.checker.quiescent:
            return True
        # a quiescent run goes on until convergence can be judged
        if not self.workload.exhausted(self.now):
            return False
        deadline = self.checker.convergence_deadline()
        if self.now >= deadline:
            return True
        if self._recheck_at != deadline:
            self._recheck_at = deadline
            self.call_at(deadline, self._recheck)
        return False

    def _recheck(self) -> None:
        self._check_done = True

    def _workload_over(self) -> None:
        """No transaction will come any more: a quiescent run may be over, and is
        looked at again at its convergence deadline (even if nothing happens then)."""
        self._check_done = True
        self.checker.workload_done = True
        deadline = self.checker.convergence_deadline()
        if self._recheck_at != deadline:
            self._recheck_at = deadline
            self.call_at(deadline, self._recheck)

    # -- node lifecycle --------------------------------------------------------

    def _start(self, node: SimNode, restart: bool = False) -> None:
        store = node.store
        if self.epochs:
            node.replica = self._make_switch(node, restart)
            node.up = True
            self.status.moved_at[node.id] = self.now
            self._round(node, node.replica.start(node.clock.local(self.now)), self.now)
            self._drive(node, self.now)
            return
        node.replica = self.kit.factory(
            self.config,
            node.id,
            node.signer,
            self.verifier,
            self.rules,
            dict(store.records) if restart else None,
            store.tip() if restart else None,
        )
        node.up = True
        self.status.moved_at[node.id] = self.now  # as the daemon's sync starts from its tip
        self._round(node, node.replica.start(node.clock.local(self.now)), self.now)
        self._drive(node, self.now)

    def crash(self, i: int) -> None:
        """Node ``i`` stops at this instant: a write in flight reaches the disk or
        not (a seeded coin); what waited for it (messages, blocks) is lost."""
        node = self.nodes[i]
        writing = node.writing
        if writing is not None and writing.write is not None and node.up:
            self.metrics.crashes_in_write += 1
            self.metrics.unsent_on_crash += sum(1 for a in writing.then if isinstance(a, Outbound))
            if self.rng.getrandbits(1):
                node.store.persist(writing.write.records)
        node.crash()
        self.status.peer_heights[i] = {}

    def restart(self, i: int) -> None:
        node = self.nodes[i]
        if not node.up:
            self._start(node, restart=True)

    # -- inputs to replicas ----------------------------------------------------

    def _on_message(self, node: SimNode, payload: object, vt: int) -> None:
        assert isinstance(payload, tuple)
        epoch, body = payload
        if self.wire:
            assert isinstance(body, bytes)
            msg = decode_message(body)
        else:
            msg = cast(Message, body)
        if node.behaviour is not None:
            node.behaviour.observe(self, node.peers, msg)
        self._input(node, OnMessage(msg, epoch), vt)

    def _on_timer(self, node: SimNode, token: object, vt: int) -> None:
        if not node.up or token != node.timer_token:
            return
        node.timer_queued = None
        want = node.timer_vt
        if want is None:
            return
        if vt < want:
            node.timer_queued = want
            self.queue.push(want, TIMER, node.id, token)
            return
        node.timer_vt = None
        self._input(node, _ON_TIMER, vt)

    # -- the driver's core (node/engine/core.py) -----------------------------------

    def _input(self, node: SimNode, inp: Input, vt: int) -> None:
        """An input for node's replica: it waits while a write is in flight."""
        node.inbox.append(inp)
        if node.writing is None:
            self._drive(node, vt)

    def _drive(self, node: SimNode, vt: int) -> None:
        """Run rounds of the inputs waiting, as the daemon's driver does, until none
        is left or a round's write is in flight."""
        inbox = node.inbox
        while inbox and node.writing is None:
            replica = node.replica
            assert replica is not None
            now = node.clock.local(vt)
            if len(inbox) == 1:
                actions = feed(replica, inbox.popleft(), now)
            else:
                actions = []
                for _ in range(min(len(inbox), MAX_INPUTS_PER_ROUND)):
                    actions.extend(feed(replica, inbox.popleft(), now))
            self._round(node, actions, vt)

    def _round(self, node: SimNode, actions: Sequence[Action], vt: int) -> None:
        """Carry out one round's actions in the core's order; with a write, what
        waits for it is carried out when it lands (``_written``)."""
        if not actions:
            return
        step = plan(actions)
        edges = self._edges[node.id]
        for action in step.first:
            carry_out(action, edges)
        if step.write is None:
            for action in step.then:
                carry_out(action, edges)
            return
        node.writing = step
        self.queue.push(vt + self.write_ms, WRITTEN, node.id, node.life)

    def _written(self, node: SimNode, life: object, vt: int) -> None:
        """The round's write landed (unless the node crashed since): carry out what
        waited for it, then the next round."""
        step = node.writing
        if not node.up or life != node.life or step is None or step.write is None:
            return
        node.store.persist(step.write.records)
        node.writing = None
        edges = self._edges[node.id]
        for action in step.then:
            carry_out(action, edges)
        self._drive(node, vt)

    # -- actions ---------------------------------------------------------------

    def _transmit(self, node: SimNode, action: Outbound, vt: int) -> None:
        if isinstance(action, Broadcast):
            self._broadcast(node, action.message, vt, action.epoch)
        elif isinstance(action, Send):
            to = self._node_of_index(node, action.epoch, action.to)
            if to is not None:
                self._send(node, to, action.message, vt, action.epoch)
        else:
            self._relay(node, action, vt)

    def _node_of_index(self, node: SimNode, epoch: int, index: int) -> int | None:
        """The node id of validator ``index`` of ``epoch`` (itself in a run without epochs)."""
        if not self.epochs:
            return index
        nodes = self._epoch_nodes(node, epoch)
        return nodes[index] if 0 <= index < len(nodes) else None

    def _relay(self, node: SimNode, action: Relay, vt: int) -> None:
        """The client requests, over the network, into the primary's inbox."""
        to = self._node_of_index(node, action.epoch, action.to)
        if to is None:
            return
        for req in action.requests:
            for d in self.network.delays(node.id, to):
                self.queue.push(vt + d, REQUEST, to, req)

    def _on_need_sync(self, node: SimNode, target: int, hints: tuple[int, ...], vt: int) -> None:
        if self.scenario.network.status_sync:  # the daemon ignores the hints
            self.status.sync_to(node, target, vt)
        else:
            self._need_sync(node, hints, vt)

    def _need_sync(self, node: SimNode, hints: tuple[int, ...], vt: int) -> None:
        """A sync request round (also the one the status heartbeat decides on)."""
        self.sync.request(node, hints, vt)

    def _note(self, node: SimNode, action: Note, vt: int) -> None:
        if isinstance(action, ViewChanged):
            if node.honest:
                self.metrics.view_changes += 1
        elif isinstance(action, Rejected):
            self.metrics.reject(action.reason.split(":", 1)[0])
        elif isinstance(action, Evidence):
            self.metrics.evidence += 1
            accused = self._node_of_index(node, action.epoch, action.validator)
            if node.honest and accused is not None:
                self.checker.on_evidence(node.id, accused, vt)
        elif isinstance(action, Divergence) and node.honest:
            self.checker.on_divergence(node.id, action.height, action.ours, action.stable, vt)

    def _record_proposals(self, msg: Message) -> None:
        if isinstance(msg, PrePrepare):
            self.checker.record_pre_prepare(msg)
        elif isinstance(msg, NewView):
            for pp in msg.pre_prepares:
                self.checker.record_pre_prepare(pp)

    def _record_sent(self, node: SimNode, msg: Message, vt: int, epoch: int = 0) -> None:
        if node.honest:  # before any Byzantine twist: what the replica itself sent
            me = node.id
            if self.epochs:
                nodes = self._epoch_nodes(node, epoch)
                me = nodes.index(node.id) if node.id in nodes else -1
            self.checker.on_honest_send(node.id, msg, vt, me)
        else:
            self._record_proposals(msg)

    def _framed(
        self, node: SimNode, name: str, msg: Message, copies: int, vt: int
    ) -> object | None:
        """What goes on the wire for ``msg`` (its encoding, or the object itself when the
        run does not encode), its frame size noted; None when the frame is over the
        limit (``copies`` frames are then counted as oversized, and none is sent)."""
        payload: object = encode_message(msg) if self.wire else msg
        size = self.frames.frame_size(msg, payload if isinstance(payload, bytes) else None)
        largest = self.metrics.largest_frame
        if size > largest.get(name, 0):
            largest[name] = size
        if size > self.frames.max_frame_bytes:
            self._oversized(node.id, True, name, size, copies, vt)
            return None
        return payload

    def _broadcast(self, node: SimNode, msg: Message, vt: int, epoch: int = 0) -> None:
        self._record_sent(node, msg, vt, epoch)
        peers = node.peers
        if self.epochs:
            peers = tuple(i for i in self._epoch_nodes(node, epoch) if i != node.id)
        if node.behaviour is not None:
            node.behaviour.transmit(self, peers, msg)
            return
        name = self._names[type(msg)]
        sent = self.metrics.sent
        sent[name] = sent.get(name, 0) + len(peers)
        body = self._framed(node, name, msg, len(peers), vt)
        if body is None:
            return
        payload = (epoch, body)
        src = node.id
        delays = self._link(name)
        queue = self.queue
        q = queue.heap
        push = heapq.heappush
        seq = queue.seq
        for dst in peers:
            for d in delays(src, dst):
                push(q, (vt + d, next(seq), MSG, dst, payload))

    def _send(self, node: SimNode, to: int, msg: Message, vt: int, epoch: int = 0) -> None:
        self._record_sent(node, msg, vt, epoch)
        if node.behaviour is not None:
            node.behaviour.transmit(self, (to,), msg)
            return
        name = self._names[type(msg)]
        self.metrics.count(name)
        body = self._framed(node, name, msg, 1, vt)
        if body is None:
            return
        for d in self._link(name)(node.id, to):
            self.queue.push(vt + d, MSG, to, (epoch, body))

    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None:
        """One message from a Byzantine behaviour (the ``Outbox`` protocol)."""
        if type(msg) is PrePrepare or type(msg) is NewView:
            self._record_proposals(msg)
        name = self._names[type(msg)]
        self.metrics.count(name)
        body: object = encode_message(msg) if self.wire else msg
        size = self.frames.frame_size(msg, body if isinstance(body, bytes) else None)
        if size > self.frames.max_frame_bytes:
            self._oversized(src, self.nodes[src].honest, name, size, 1, self.now)
            return
        switch = self.nodes[src].replica
        epoch = switch.epoch.number if isinstance(switch, EpochSwitch) else 0
        for d in self._link(name)(src, dst):
            self.queue.push(self.now + d + extra_delay, MSG, dst, (epoch, body))

    def _oversized(self, src: int, honest: bool, name: str, size: int, k: int, vt: int) -> None:
        """A ``size``-byte frame (to ``k`` peers) exceeds the limit: the transport refuses it."""
        self.metrics.drop_oversized(name, honest, k)
        if honest:
            self.frame_verdict.fail(
                node=src,
                message=name,
                frame_bytes=size,
                max_frame_bytes=self.frames.max_frame_bytes,
                time_ms=vt,
            )

    def _set_timer(self, node: SimNode, at_local: int, vt: int) -> None:
        at = node.clock.virtual_at(at_local)
        if at < vt:
            at = vt
        node.timer_vt = at
        queued = node.timer_queued
        if queued is None or at < queued:
            node.timer_token += 1
            node.timer_queued = at
            self.queue.push(at, TIMER, node.id, node.timer_token)

    def _execute(self, node: SimNode, block: CommittedBlock, vt: int) -> None:
        """Execute ``block`` on the node's store; ``OnExecuted`` goes to its inbox."""
        store = node.store
        height = block.proposal.height
        if height != len(store.chain) + 1:
            if node.honest:
                self.checker.on_out_of_order(node.id, len(store.chain) + 1, height, vt)
            return
        digest = block.proposal.digest()
        root = store.append(block, digest)
        self.status.moved_at[node.id] = vt
        if node.honest:
            if self.checker.on_commit(node.id, block, digest, vt):
                self.clients.committed(block, vt)
                if self._truth is not None:
                    k, w = store.epoch_knobs
                    self._truth = next_schedule(self._truth, height, block.payload, k, w)
            if height == self.scenario.stop_at_height and node.id in self._target_set:
                self._reached += 1
            self._check_done = self.scenario.stop_at_height > 0
        node.inbox.append(OnExecuted(height, root))


class NodeEdges:
    """One node's ``Edges`` of the driver's core: the simulation's network, store and clock."""

    __slots__ = ("node", "sim")

    def __init__(self, sim: Simulation, node: SimNode) -> None:
        self.sim = sim
        self.node = node

    def transmit(self, action: Outbound) -> None:
        self.sim._transmit(self.node, action, self.sim.now)

    def execute(self, block: CommittedBlock) -> None:
        self.sim._execute(self.node, block, self.sim.now)

    def arm_timer(self, at: int) -> None:
        self.sim._set_timer(self.node, at, self.sim.now)

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        self.sim._on_need_sync(self.node, target, hints, self.sim.now)

    def note(self, action: Note) -> None:
        self.sim._note(self.node, action, self.sim.now)


def run(scenario: Scenario, seed: int, kit: ReplicaKit | None = None) -> Simulation:
    """Run ``scenario`` with ``seed`` to the end and return the finished simulation."""
    return Simulation(scenario, seed, kit).run()
