"""A tiny synchronous harness for the consensus replica (not a test module).

``Cluster`` runs n real ``Replica`` objects with ``KeyedHashScheme`` keys and
a single explicitly controlled FIFO message queue. Nothing happens unless a
test asks for it: ``step``/``deliver_all`` hand queued messages over,
``drop_where``/``deliver_where``/``reorder`` change what the network does,
``advance``/``run`` move the virtual clock and fire due timers.

Each call of a replica entry point is one round of the driver's core
(``node.engine.core``, the daemon's and the simulator's too), carried out in
the core's order: the messages listed before every ``Persist`` and the
timers, sync requests and informational actions at once; then ONE
``Persist`` with the records of all of them (the node's record dict, ``None``
deletes); then the messages that followed a ``Persist``; then the delivered
blocks. ``Send`` and ``Broadcast`` enqueue, ``Deliver`` appends the block to
the node's chain, and once the round is over each executed block comes back
as ``on_executed(height, sha256(prev_root + digest), now)``, in delivery
order; ``SetTimer`` arms the node's one timer. Everything else is kept in
``Node.events``.

A crash rebuilds the replica from the persisted records and a ``ChainTip`` of
the executed chain. ``crash_after(i, k)`` crashes node i after it carried out
k more steps in the core's order (the write counts as one step; the rest of
the interrupted rounds is lost), which lets a test crash a node between any
two steps: before the write (its records are lost with the messages waiting
for it) or after it (only the messages and blocks not yet handed on are).

``Solo`` drives a single replica by hand, and ``Craft`` builds validly signed
messages of any validator for it (the other validators are simulated).
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

from consensus.actions import (
    Action,
    Broadcast,
    NeedSync,
    Persist,
    Send,
)
from consensus.config import ConsensusConfig
from consensus.messages import (
    Checkpoint,
    Commit,
    CommittedBlock,
    Message,
    NewView,
    NewViewRequest,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    sign_message,
)
from consensus.replica import ChainTip, Replica
from node.engine.core import Note, Outbound, carry_out, plan
from node.sim.crypto import KeyedHashScheme, SimPayloadRules

CHAIN_ID = "hygeia-unit"
GENESIS_ROOT = hashlib.sha256(b"hygeia-unit/genesis").digest()

Vote = PrePrepare | Prepare | Commit


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Knobs(TypedDict, total=False):
    """ConsensusConfig fields a test may override."""

    batch_max_count: int
    batch_max_bytes: int
    batch_timeout_ms: int
    pipeline_window: int
    checkpoint_interval: int
    watermark_window: int
    view_change_timeout_ms: int
    view_change_timeout_max_ms: int
    request_timeout_ms: int
    max_clock_drift_ms: int
    future_buffer_limit: int
    resend_interval_ms: int


def make_config(n: int, **overrides: Unpack[Knobs]) -> ConsensusConfig:
    return ConsensusConfig(chain_id=CHAIN_ID, n=n, **overrides)


def votes_in(action: Action, sender: int | None = None) -> list[Vote]:
    """The votes (PRE-PREPARE, PREPARE, COMMIT) an outgoing action carries,
    including the re-proposals inside a NEW-VIEW; only ``sender``'s own votes
    when given (a replica forwards other primaries' NEW-VIEWs)."""
    found = _votes_in(action)
    return found if sender is None else [v for v in found if v.sender == sender]


def _votes_in(action: Action) -> list[Vote]:
    if not isinstance(action, Broadcast | Send):
        return []
    msg = action.message
    if isinstance(msg, PrePrepare | Prepare | Commit):
        return [msg]
    if isinstance(msg, NewView):
        return list(msg.pre_prepares)
    return []


def vote_key(v: Vote) -> tuple[str, int, int]:
    """(phase, height, view): a PRE-PREPARE is its primary's prepare-phase vote."""
    if isinstance(v, Commit):
        return ("commit", v.height, v.view)
    return ("prepare", v.height, v.view)


def vote_digest(v: Vote) -> bytes:
    return v.proposal.digest() if isinstance(v, PrePrepare) else v.digest


def conflicts(votes: Iterable[Vote]) -> list[tuple[Vote, Vote]]:
    """Pairs of votes for one (phase, height, view) with different digests."""
    first: dict[tuple[str, int, int], Vote] = {}
    bad: list[tuple[Vote, Vote]] = []
    for v in votes:
        k = vote_key(v)
        seen = first.setdefault(k, v)
        if vote_digest(seen) != vote_digest(v):
            bad.append((seen, v))
    return bad


def persist(records: dict[bytes, bytes], action: Persist) -> None:
    """Carry out ``action`` on a driver's record dict (``None`` deletes)."""
    for key, value in action.records:
        if value is None:
            records.pop(key, None)
        else:
            records[key] = value


def chain_tip(blocks: Sequence[CommittedBlock], roots: Sequence[bytes]) -> ChainTip | None:
    """The ``ChainTip`` a restarted replica gets from an executed chain (None: empty)."""
    if not blocks:
        return None
    return ChainTip(len(blocks), blocks[-1].proposal.timestamp, roots[-1])


@dataclass(frozen=True)
class Envelope:
    src: int
    dst: int
    msg: Message


class Crashed(Exception):
    def __init__(self, node: int) -> None:
        super().__init__(f"node {node} crashed")
        self.node = node


@dataclass
class Node:
    """One validator of a ``Cluster``: its replica and what its driver keeps."""

    index: int
    replica: Replica
    records: dict[bytes, bytes] = field(default_factory=dict)
    blocks: list[CommittedBlock] = field(default_factory=list)
    roots: list[bytes] = field(default_factory=lambda: [GENESIS_ROOT])
    timer_at: int | None = None
    alive: bool = True
    # every action list returned by the replica, with the entry point's name
    calls: list[tuple[str, list[Action]]] = field(default_factory=list)
    # every step carried out, in the core's order, with the id of the call that
    # returned it (the round's write is one Persist; on_executed calls get their own id)
    trace: list[tuple[int, Action]] = field(default_factory=list)
    # (height, state root) of executed blocks waiting to come back as on_executed
    executed: deque[tuple[int, bytes]] = field(default_factory=deque)
    # every vote that left the node (carried-out Broadcast/Send), in order
    votes: list[Vote] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    # informational actions: Evidence, Divergence, NeedSync, ViewChanged, Rejected
    events: list[Action] = field(default_factory=list)
    # the same with the virtual time they happened at
    timeline: list[tuple[int, Action]] = field(default_factory=list)
    # the node's mempool: requests handed to it, re-fed after a restart
    mempool: dict[bytes, None] = field(default_factory=dict)

    def tip(self) -> ChainTip | None:
        return chain_tip(self.blocks, self.roots)

    def sent_of(self, kind: type) -> list[Message]:
        return [m for m in self.sent if isinstance(m, kind)]


class Cluster:
    def __init__(
        self, n: int, *, seed: int = 0, start: bool = True, **overrides: Unpack[Knobs]
    ) -> None:
        self.config = make_config(n, **overrides)
        self.scheme = KeyedHashScheme(n, seed)
        self.verifier = self.scheme.verifier()
        self.rules = SimPayloadRules()
        self.craft = Craft(self.config, self.scheme)
        self.now = 0
        self.queue: list[Envelope] = []
        # nodes whose messages (both ways) the network drops on delivery
        self.isolated: set[int] = set()
        # drop a message on delivery when this returns True
        self.drop_if: Callable[[Envelope], bool] | None = None
        self._crash_budget: dict[int, int] = {}
        # serve NeedSync from a peer's chain at the end of each ``run`` round
        self.auto_sync = False
        # Status heartbeats are kept out of the queue and ``sent`` unless a test
        # asks for them (tests written before them count messages exactly)
        self.deliver_status = False
        # Relay actions are only recorded unless a test asks for their delivery
        self.deliver_relays = False
        self._sync_due: dict[int, None] = {}
        self._depth: dict[int, int] = {}
        # the epoch's last height as the executed state would tell it (None: unknown)
        self.epoch_end: int | None = None
        self.nodes = [Node(i, self._make(i, None, None)) for i in range(n)]
        self._edges = [ClusterEdges(self, node) for node in self.nodes]
        if start:
            for i in range(n):
                self.call(i, "start", lambda r: r.start(self.now))

    # ------------------------------------------------------------ replicas
    def _make(self, i: int, records: dict[bytes, bytes] | None, tip: ChainTip | None) -> Replica:
        return Replica(
            self.config,
            i,
            self.scheme.signer(i),
            self.verifier,
            self.rules,
            records=records,
            tip=tip,
        )

    def replica(self, i: int) -> Replica:
        return self.nodes[i].replica

    def call(self, i: int, name: str, entry: Callable[[Replica], list[Action]]) -> list[Action]:
        """Run one entry point of node i and carry out its actions."""
        node = self.nodes[i]
        if not node.alive:
            return []
        self._depth[i] = self._depth.get(i, 0) + 1
        try:
            actions = entry(node.replica)
            node.calls.append((name, actions))
            self._process(node, actions, len(node.calls) - 1)
            while node.executed:  # the blocks of this round (and earlier ones), in order
                h, root = node.executed.popleft()
                self.call(i, "on_executed", self._on_executed(h, root))
            return actions
        except Crashed:
            if self._depth[i] > 1:
                raise
            self.restart(i)
            return []
        finally:
            self._depth[i] -= 1

    def _process(self, node: Node, actions: Sequence[Action], call_id: int) -> None:
        """Carry out one round, step by step in the core's order (``crash_after`` counts steps)."""
        i = node.index
        edges = self._edges[i]
        for a in plan(actions):
            budget = self._crash_budget.get(i)
            if budget is not None:
                if budget == 0:
                    del self._crash_budget[i]
                    self.crash(i)
                    raise Crashed(i)
                self._crash_budget[i] = budget - 1
            node.trace.append((call_id, a))
            if isinstance(a, Persist):  # the round's write
                persist(node.records, a)
            else:
                carry_out(a, edges)

    # the node's edges of the driver's core (ClusterEdges hands each step here)
    def _transmit(self, node: Node, a: Outbound) -> None:
        i = node.index
        if isinstance(a, Broadcast | Send) and isinstance(a.message, Status):
            node.statuses.append(a.message)
            if self.deliver_status:
                dsts = [a.to] if isinstance(a, Send) else range(self.config.n)
                self.queue.extend(Envelope(i, j, a.message) for j in dsts if j != i)
        elif isinstance(a, Broadcast):
            node.votes.extend(votes_in(a, i))
            node.sent.append(a.message)
            for j in range(self.config.n):
                if j != i:
                    self.queue.append(Envelope(i, j, a.message))
        elif isinstance(a, Send):
            node.votes.extend(votes_in(a, i))
            node.sent.append(a.message)
            self.queue.append(Envelope(i, a.to, a.message))
        else:  # Relay: recorded, and delivered when a test asks
            node.events.append(a)
            node.timeline.append((self.now, a))
            if (
                self.deliver_relays
                and 0 <= a.to < self.config.n
                and a.to != i
                and self.nodes[a.to].alive
            ):
                # as the driver does: the requests reach the peer's mempool
                for req in a.requests:
                    self.nodes[a.to].mempool[req] = None
                    self.call(a.to, "on_request", self._on_request(req))

    def _execute(self, node: Node, block: CommittedBlock) -> None:
        h = block.height
        assert h == len(node.blocks) + 1, (
            f"node {node.index}: delivered {h} after {len(node.blocks)}"
        )
        node.blocks.append(block)
        root = sha256(node.roots[-1] + block.proposal.digest())
        node.roots.append(root)
        for req in block.payload:
            node.mempool.pop(req, None)
        node.executed.append((h, root))

    def _note(self, node: Node, a: Action) -> None:
        node.events.append(a)
        node.timeline.append((self.now, a))

    # ------------------------------------------------------------- crashes
    def crash(self, i: int) -> None:
        """Stop node i: its in-memory state is gone, its records and chain stay."""
        node = self.nodes[i]
        node.alive = False
        node.timer_at = None
        node.executed.clear()

    def restart(self, i: int) -> list[Action]:
        """Rebuild node i from its persisted records and chain tip, then start it."""
        node = self.nodes[i]
        node.replica = self._make(i, dict(node.records), node.tip())
        node.alive = True
        node.timer_at = None
        out = self.call(i, "start", lambda r: r.start(self.now))
        for req in list(node.mempool):
            self.call(i, "on_request", self._on_request(req))
        return out

    def _on_request(self, tx: bytes) -> Callable[[Replica], list[Action]]:
        return lambda r: r.on_request(tx, self.now)

    def _on_block(self, block: CommittedBlock) -> Callable[[Replica], list[Action]]:
        return lambda r: r.on_committed_block(block, self.now)

    def _on_executed(self, h: int, root: bytes) -> Callable[[Replica], list[Action]]:
        return lambda r: r.on_executed(h, root, self.now, epoch_end=self.epoch_end)

    def crash_after(self, i: int, k: int) -> None:
        """Crash node i (and restart it at once) after it carried out ``k`` more
        steps of its rounds (in the core's order; the write is one step)."""
        self._crash_budget[i] = k

    # ------------------------------------------------------------- network
    def request(self, tx: bytes, to: Iterable[int] | None = None) -> None:
        for i in range(self.config.n) if to is None else to:
            self.nodes[i].mempool[tx] = None
            self.call(i, "on_request", self._on_request(tx))

    def _blocked(self, env: Envelope) -> bool:
        if env.src in self.isolated or env.dst in self.isolated:
            return True
        return self.drop_if is not None and self.drop_if(env)

    def deliver(self, env: Envelope) -> list[Action]:
        if self._blocked(env):
            return []
        return self.call(
            env.dst, "on_message", lambda r: r.on_message(env.msg, self.now, r.config.epoch)
        )

    def step(self) -> Envelope | None:
        """Hand the oldest queued message to its destination (or drop it)."""
        if not self.queue:
            return None
        env = self.queue.pop(0)
        self.deliver(env)
        return env

    def deliver_all(self, max_steps: int = 200_000) -> int:
        steps = 0
        while self.queue:
            steps += 1
            assert steps <= max_steps, "message storm: queue never drains"
            self.step()
        return steps

    def deliver_where(self, pred: Callable[[Envelope], bool]) -> int:
        """Deliver (once, in order) only the queued messages matching ``pred``."""
        chosen = [e for e in self.queue if pred(e)]
        self.queue = [e for e in self.queue if not pred(e)]
        for env in chosen:
            self.deliver(env)
        return len(chosen)

    def drop_where(self, pred: Callable[[Envelope], bool]) -> int:
        before = len(self.queue)
        self.queue = [e for e in self.queue if not pred(e)]
        return before - len(self.queue)

    def reorder(self, order: Callable[[list[Envelope]], list[Envelope]]) -> None:
        new = order(list(self.queue))
        assert sorted(map(id, new)) == sorted(map(id, self.queue)), "reorder must permute"
        self.queue = new

    # --------------------------------------------------------------- clock
    def fire_timers(self) -> int:
        """Fire every due timer (node index order) until none is due at ``now``."""
        fired = 0
        while True:
            due = [
                n.index
                for n in self.nodes
                if n.alive and n.timer_at is not None and n.timer_at <= self.now
            ]
            if not due:
                return fired
            for i in due:
                self.nodes[i].timer_at = None
                fired += 1
                self.call(i, "on_timer", lambda r: r.on_timer(self.now))

    def advance(self, to: int) -> None:
        assert to >= self.now, "time never goes back"
        self.now = to
        self.fire_timers()

    def next_timer(self) -> int | None:
        ats = [n.timer_at for n in self.nodes if n.alive and n.timer_at is not None]
        return min(ats) if ats else None

    def run(self, until: int, *, max_rounds: int = 10_000) -> None:
        """Deliver everything, then jump to the next timer, until ``until``."""
        for _ in range(max_rounds):
            self.deliver_all()
            while self._sync_due:
                due, self._sync_due = list(self._sync_due), {}
                for i in due:
                    self.sync(i)
                self.deliver_all()
            nxt = self.next_timer()
            if nxt is None or nxt > until:
                self.now = max(self.now, until)
                return
            self.advance(max(nxt, self.now))
        raise AssertionError("run: too many rounds")

    def sync(self, i: int) -> int:
        """Feed node i, as its driver would after ``NeedSync``, the committed
        blocks it lacks from the longest chain of a live peer."""
        node = self.nodes[i]
        donor = max(
            (n for n in self.nodes if n.alive and n.index != i), key=lambda n: len(n.blocks)
        )
        fed = 0
        for b in donor.blocks[len(node.blocks) :]:
            fed += 1
            self.call(i, "on_committed_block", self._on_block(b))
        return fed

    # ---------------------------------------------------------- inspection
    def heights(self) -> list[int]:
        return [len(n.blocks) for n in self.nodes]

    def assert_agreement(self) -> None:
        """No two nodes hold different blocks at one height; no node conflicting votes."""
        by_height: dict[int, bytes] = {}
        for node in self.nodes:
            for b in node.blocks:
                d = by_height.setdefault(b.height, b.proposal.digest())
                assert d == b.proposal.digest(), f"fork at height {b.height}"
            bad = conflicts(node.votes)
            assert not bad, f"node {node.index} sent conflicting votes: {bad[0]}"


class ClusterEdges:
    """One node's ``Edges`` of the driver's core in a ``Cluster``."""

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node

    def transmit(self, action: Outbound) -> None:
        self.cluster._transmit(self.node, action)

    def execute(self, block: CommittedBlock) -> None:
        self.cluster._execute(self.node, block)

    def arm_timer(self, at: int) -> None:
        self.node.timer_at = at

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        self.cluster._note(self.node, NeedSync(target, hints))
        if self.cluster.auto_sync:
            self.cluster._sync_due[self.node.index] = None

    def note(self, action: Note) -> None:
        self.cluster._note(self.node, action)


class Craft:
    """Validly signed messages from any validator, for hand-driven tests."""

    def __init__(self, config: ConsensusConfig, scheme: KeyedHashScheme) -> None:
        self.config = config
        self.scheme = scheme
        self.rules = SimPayloadRules()

    def sign(self, msg: Signed, as_: int | None = None) -> Signed:
        """Sign ``msg`` with its sender's key (or ``as_``'s key)."""
        signer = self.scheme.signer(msg.sender if as_ is None else as_)
        return sign_message(msg, signer.sign, self.config.signing_domain)

    def proposal(
        self, height: int, payload: tuple[bytes, ...], *, ts: int, proposer: int
    ) -> Proposal:
        root = self.rules.payload_root(payload)
        return Proposal(self.config.chain_id, height, ts, proposer, root)

    def pre_prepare(
        self,
        view: int,
        height: int,
        payload: tuple[bytes, ...] = (),
        *,
        ts: int | None = None,
        sender: int | None = None,
    ) -> PrePrepare:
        p = self.config.primary(view) if sender is None else sender
        prop = self.proposal(height, payload, ts=height if ts is None else ts, proposer=p)
        pp = self.sign(PrePrepare(view, prop, payload, p))
        assert isinstance(pp, PrePrepare)
        return pp

    def prepare(self, view: int, height: int, digest: bytes, sender: int) -> Prepare:
        m = self.sign(Prepare(view, height, digest, sender))
        assert isinstance(m, Prepare)
        return m

    def commit(self, view: int, height: int, digest: bytes, sender: int) -> Commit:
        m = self.sign(Commit(view, height, digest, sender))
        assert isinstance(m, Commit)
        return m

    def checkpoint(self, height: int, root: bytes, sender: int) -> Checkpoint:
        m = self.sign(Checkpoint(height, root, sender))
        assert isinstance(m, Checkpoint)
        return m

    def prepared_cert(self, pp: PrePrepare, backups: Sequence[int]) -> PreparedCert:
        d = pp.proposal.digest()
        return PreparedCert(pp, tuple(self.prepare(pp.view, pp.height, d, s) for s in backups))

    def view_change(
        self,
        new_view: int,
        sender: int,
        prepared: tuple[PreparedCert, ...] = (),
        *,
        stable: tuple[int, bytes, tuple[Checkpoint, ...]] = (0, b"", ()),
    ) -> ViewChange:
        h, root, proof = stable
        stripped = tuple(c.stripped() for c in prepared)  # as a replica sends them
        m = self.sign(ViewChange(new_view, h, root, proof, stripped, sender))
        assert isinstance(m, ViewChange)
        return m

    def new_view(
        self, view: int, vcs: tuple[ViewChange, ...], pps: tuple[PrePrepare, ...] | None = None
    ) -> NewView:
        """A NEW-VIEW from the view's primary; ``pps`` default to the spec's selection."""
        p = self.config.primary(view)
        if pps is None:
            pps = self.reproposals(view, vcs)
        m = self.sign(NewView(view, vcs, pps, p))
        assert isinstance(m, NewView)
        return m

    def reproposals(self, view: int, vcs: tuple[ViewChange, ...]) -> tuple[PrePrepare, ...]:
        """The spec's NEW-VIEW selection, written independently of the replica."""
        min_s = max(vc.stable_height for vc in vcs)
        best: dict[int, PreparedCert] = {}
        for vc in vcs:
            for cert in vc.prepared:
                h = cert.pre_prepare.height
                if h > min_s and (
                    h not in best or cert.pre_prepare.view > best[h].pre_prepare.view
                ):
                    best[h] = cert
        p = self.config.primary(view)
        out: list[PrePrepare] = []
        for h in range(min_s + 1, max(best, default=min_s) + 1):
            if h in best:
                old = best[h].pre_prepare
                pp = PrePrepare(view, old.proposal, (), p)  # re-proposed without payload
            else:
                pp = PrePrepare(view, self.proposal(h, (), ts=h, proposer=p), (), p)
            signed = self.sign(pp)
            assert isinstance(signed, PrePrepare)
            out.append(signed)
        return tuple(out)

    def nv_request(self, view: int, sender: int) -> NewViewRequest:
        m = self.sign(NewViewRequest(view, sender))
        assert isinstance(m, NewViewRequest)
        return m


class Solo:
    """One real replica driven by hand; the other validators' messages are crafted.

    Every entry point is a round of the driver's core (``node.engine.core``)
    and returns the replica's actions as it listed them, followed by those of
    the ``on_executed`` calls that answer the blocks it delivered, in delivery
    order (when the driver feeds them back). ``records`` collects the round's
    write; ``restart()`` rebuilds the replica from them and the executed chain.
    """

    def __init__(
        self,
        n: int,
        me: int,
        *,
        seed: int = 0,
        config: ConsensusConfig | None = None,
        tip: ChainTip | None = None,
        records: dict[bytes, bytes] | None = None,
        **overrides: Unpack[Knobs],
    ) -> None:
        self.config = config or make_config(n, **overrides)
        # a chain that starts elsewhere than genesis (a later epoch's replica)
        self._tip = tip
        # the epoch's last height as the executed state would tell it (None: unknown)
        self.epoch_end: int | None = None
        self.me = me
        self.scheme = KeyedHashScheme(n, seed)
        self.craft = Craft(self.config, self.scheme)
        self.records: dict[bytes, bytes] = dict(records or {})
        self.blocks: list[CommittedBlock] = []
        self.roots: list[bytes] = [GENESIS_ROOT]
        # (height -> root) overrides to simulate diverging execution
        self.root_override: dict[int, bytes] = {}
        self.log: list[Action] = []
        self.now = 0
        self.timer_at: int | None = None
        # (height, state root) of executed blocks waiting to come back as on_executed
        self.executed: deque[tuple[int, bytes]] = deque()
        self._edges = SoloEdges(self)
        self.replica = self._make()
        self.start()

    def _make(self) -> Replica:
        return Replica(
            self.config,
            self.me,
            self.scheme.signer(self.me),
            self.scheme.verifier(),
            SimPayloadRules(),
            records=dict(self.records),
            tip=chain_tip(self.blocks, self.roots) if self._tip is None else self._tip,
        )

    def _run(self, actions: list[Action]) -> list[Action]:
        out = list(actions)
        for a in plan(actions):
            if isinstance(a, Persist):  # the round's write
                persist(self.records, a)
            else:
                carry_out(a, self._edges)
        self.log.extend(actions)
        while self.executed:
            h, root = self.executed.popleft()
            executed = self.replica.on_executed(h, root, self.now, epoch_end=self.epoch_end)
            out.extend(self._run(executed))
        return out

    def _execute(self, block: CommittedBlock) -> None:
        h = block.height
        assert h == len(self.blocks) + 1
        self.blocks.append(block)
        root = self.root_override.get(h) or sha256(self.roots[-1] + block.proposal.digest())
        self.roots.append(root)
        self.executed.append((h, root))

    def _at(self, now: int | None) -> None:
        if now is not None:
            assert now >= self.now
            self.now = now

    def start(self, now: int | None = None) -> list[Action]:
        self._at(now)
        return self._run(self.replica.start(self.now))

    def restart(self, now: int | None = None) -> list[Action]:
        self.replica = self._make()
        self.timer_at = None
        self.executed.clear()
        return self.start(now)

    def feed(self, *msgs: Message, now: int | None = None) -> list[Action]:
        self._at(now)
        out: list[Action] = []
        for m in msgs:
            out.extend(self._run(self.replica.on_message(m, self.now, self.config.epoch)))
        return out

    def request(self, *txs: bytes, now: int | None = None) -> list[Action]:
        self._at(now)
        out: list[Action] = []
        for tx in txs:
            out.extend(self._run(self.replica.on_request(tx, self.now)))
        return out

    def timer(self, now: int) -> list[Action]:
        self._at(now)
        return self._run(self.replica.on_timer(self.now))

    def run_timers(self, until: int) -> list[tuple[int, list[Action]]]:
        """Fire the replica's timer each time it is due, up to ``until``;
        returns (time, actions) of every firing."""
        fired: list[tuple[int, list[Action]]] = []
        while self.timer_at is not None and self.timer_at <= until:
            at, self.timer_at = self.timer_at, None
            fired.append((at, self.timer(max(at, self.now))))
        self.now = max(self.now, until)
        return fired

    def block(self, block: CommittedBlock, now: int | None = None) -> list[Action]:
        self._at(now)
        return self._run(self.replica.on_committed_block(block, self.now))

    def commit_heights(self, heights: Iterable[int], view: int = 0) -> list[Action]:
        """Drive this backup through pre-prepare, prepares and commits of each
        height (payload ``tx:<h>``) as the other validators would."""
        c = self.craft
        others = [i for i in range(self.config.n) if i != self.me]
        out: list[Action] = []
        for h in heights:
            pp = c.pre_prepare(view, h, (b"tx:%d" % h,))
            d = pp.proposal.digest()
            out += self.feed(pp)
            out += self.feed(*(c.prepare(view, h, d, i) for i in others if i != pp.sender))
            out += self.feed(*(c.commit(view, h, d, i) for i in others))
        return out

    def make_stable(self, height: int) -> list[Action]:
        """Feed the others' CHECKPOINTs of ``height`` with our own root."""
        others = [i for i in range(self.config.n) if i != self.me]
        return self.feed(*(self.craft.checkpoint(height, self.roots[height], i) for i in others))


class SoloEdges:
    """``Edges`` of the driver's core for a ``Solo``: blocks and the timer; the
    messages and the rest are only returned to the test."""

    def __init__(self, solo: Solo) -> None:
        self.solo = solo

    def transmit(self, action: Outbound) -> None:
        pass

    def execute(self, block: CommittedBlock) -> None:
        self.solo._execute(block)

    def arm_timer(self, at: int) -> None:
        self.solo.timer_at = at

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        pass

    def note(self, action: Note) -> None:
        pass


def of_type(actions: Iterable[Action], kind: type) -> list[Action]:
    return [a for a in actions if isinstance(a, kind)]


def sent_messages(actions: Iterable[Action], kind: type | None = None) -> list[Message]:
    """Messages of Broadcast/Send actions (optionally of one type), in order."""
    out: list[Message] = []
    for a in actions:
        if isinstance(a, Broadcast | Send) and (kind is None or isinstance(a.message, kind)):
            out.append(a.message)
    return out
