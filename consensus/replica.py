"""The PBFT replica: a pure state machine that never forks.

Theory of operation
===================

Inputs and outputs
------------------
The replica does no I/O and reads no clock. Every entry point takes ``now``
(integer milliseconds of the driver's clock) and returns an ordered list of
actions (``actions.py``). The driver carries them out in order; a ``Persist``
is durable before any later send leaves the process. Entry points:
``start``, ``on_message``, ``on_request``, ``on_timer``, ``on_executed`` and
``on_committed_block``. Signatures are checked through an injected verifier.

What is agreed at each height (docs/blocks.md, pipelining vs. parent hashes)
--------------------------------------------------------------------------
Sequence numbers are heights and are never reset. Consensus orders one
independent *proposal* per height: chain id, height, timestamp, proposer and
the payload's Merkle root. The block header's parent hash and app-state root
are *not* part of it: the driver derives them deterministically after commit
(parent = hash of the previous header, state root = result of executing it)
and checkpoints certify the state root every K heights. Because no proposal
names another, pipelining W heights is safe: a view change that re-proposes
a different value at an uncommitted height h cannot break a height h+1 that
committed meanwhile.

Normal case (view v, primary p = v mod n)
-----------------------------------------
1. p cuts a batch from its pending requests when the batch is full (count or
   bytes) or its oldest request waited ``batch_timeout_ms``, for the next height
   within both the pipeline window (at most W undelivered proposals) and the
   high watermark. It persists the pre-prepare, then broadcasts PRE-PREPARE.
2. A backup accepts it when it is signed by p, in view v, inside the
   watermarks, with a matching payload root, valid payload, a timestamp no
   further than ``max_clock_drift_ms`` ahead of its clock (and after the
   previous block's when that is known), and nothing else was accepted for
   (v, h). It persists the acceptance, then broadcasts PREPARE.
3. *Prepared* (v, h, d): the pre-prepare and quorum-1 matching PREPAREs from
   distinct backups. The replica persists the prepared certificate, then
   broadcasts COMMIT.
4. *Committed* (h, d): a quorum of matching COMMITs in one view, and the payload.
   Committed blocks are delivered strictly in height order with the
   certificate, which anyone can check against the validator set.
   Commits are tallied for every view, not only the current one: a replica
   stuck in a view change, or behind, still learns what was committed.

The quorum is ceil((n+f+1)/2), i.e. 2f+1 when n = 3f+1: any two quorums share
f+1 replicas, at least one honest.

Checkpoints and watermarks
--------------------------
After executing height h with h % K == 0 the replica persists and broadcasts
CHECKPOINT(h, state root). A quorum of matching checkpoints is a stable
checkpoint: the low watermark moves to h, the high watermark to h + L, and
everything below h is garbage-collected (memory and persisted records). A
replica whose own root differs emits ``Divergence``. A replica that sees a
stable checkpoint (or f+1 checkpoints) beyond what it executed emits
``NeedSync``; the driver fetches certified blocks and feeds
``on_committed_block``. Messages for heights beyond the high watermark are
buffered (bounded per sender in count and bytes) and replayed when the window
moves, instead of dropped (Fabric #1119).

Its own checkpoints above the stable one are repeated (identical messages)
with every Status heartbeat (so also by an idle replica), on start, and on
every resend tick while it waits for progress or changes view; a restarted
replica counts its persisted own checkpoints toward their quorum. A peer whose
Status shows a stable checkpoint below ours gets ours.

Status heartbeats
-----------------
Every ``status_interval_ms``, on start and on each resend tick, a replica
broadcasts STATUS(view, delivered height, low watermark). A replica that
hears of f+1 peers at or above a height it has not delivered fetches the
blocks (``NeedSync``, hinted with those peers; one of them is honest, so a
lie needs f+1 liars). It answers a peer that is behind with its own STATUS,
a peer in an older view with its NEW-VIEW, a peer with an older stable
checkpoint with its checkpoint. Consensus never repeats votes for delivered
heights, so this is how a replica that missed the last commits of a quiet
network, or restarted after the load stopped, catches up, without a view
change (while it syncs, a view change waits two timeouts).

View change
-----------
Timers: a *progress* deadline runs while anything is undelivered (an accepted
proposal or a commit quorum waiting for payload) or a request is pending; a
*request* deadline catches a primary that keeps committing but never includes
an old request (censorship). Both are ``base * 2^k`` where k counts
consecutive view changes without a delivery; k resets on progress. The
progress clock starts when the replica starts waiting, not at its last
delivery, so an idle network never times out. Before blaming the primary a
replica repeats its own votes for stalled heights once no height was delivered
for a resend interval (at most half a timeout), and again every such interval
while the stall lasts (lost messages on lossy links). While it is syncing
(others committed heights it never saw) a view change waits two more
timeouts: the primary is not the one behind.

On expiry in view v the replica first hands its oldest pending requests to
every other replica (PBFT's client re-broadcast: a request only it knows would
leave it alone in the view change), then persists view v+1 and broadcasts
VIEW-CHANGE(v+1, stable checkpoint + proof, its prepared certificates above
it). It escalates to v+2 only after its timer expires *again* while it holds a
quorum of VIEW-CHANGEs for v+1 (PBFT's liveness rule): a replica that is
alone (partitioned, or the only one that timed out) waits, re-broadcasting,
instead of racing ahead, which is what caused view-change storms elsewhere
(Fabric #917, Indy Plenum #1488). A replica joins a view change as soon as f+1
others ask for views above its own: it moves to the smallest of them.

A replica in a view change repeats its VIEW-CHANGE every resend interval,
at most every half timeout, so a lost one goes out again before it could
escalate. A replica changing view to v that receives VIEW-CHANGE(v') with
normal view < v' < v (a peer still collecting votes for a view it has left)
answers with its own VIEW-CHANGE(v'): it prepared nothing since its last
normal view (prepared certificates change only in a normal view), so that
message tells the truth about every view below v', and it never enters a view
below its own, so it commits it to nothing.

The primary of v+1 with a quorum of VIEW-CHANGEs sends NEW-VIEW: exactly a
quorum of them (lowest senders first), and for each height between the
highest stable checkpoint min-s in it and the highest prepared height max-s,
the proposal of the prepared certificate of the highest view, or an empty
(null) proposal if none was prepared. Every replica recomputes the same
selection from the VIEW-CHANGEs in the message and accepts only an exact
match. Safety: a value committed at h was prepared by a quorum, of which f+1
honest replicas keep the certificate (it is persisted) until h is below a
stable checkpoint; every view-change quorum contains one of them, so NEW-VIEW
re-proposes that value. The selection, the re-proposals and the checks of
VIEW-CHANGE and NEW-VIEW are pure functions (``new_view.py``).

Neither message carries payloads: certificates hold *stripped* pre-prepares
(the signature covers the proposal digest, which covers the payload root),
exactly quorum-1 prepares and exactly quorum checkpoints, and anything else
is refused. So a VIEW-CHANGE holds at most L certificates of fixed size and
a NEW-VIEW a quorum of those plus L headers, whatever the transactions weigh;
``ConsensusConfig`` refuses a configuration whose worst case exceeds the
frame limit (``sizes.py``). A replica that accepts a re-proposal whose
payload it lacks votes for it (a quorum prepared it, f+1 honest replicas
hold the payload) and asks f+1 of the replicas that prepared it with
PAYLOAD-REQUEST; a PAYLOAD-REPLY is checked against the digest and payload
root. Committing needs the payload; voting does not.

A replica learns the current view from its peers: it pushes its NEW-VIEW to a
peer that sends it messages of an older view, and asks for it
(NEW-VIEW-REQUEST) when f+1 peers send messages of a newer view. NEW-VIEW is
self-certifying, so a replica accepts one for any view above its own.

Persistence and recovery
------------------------
Records (``Persist`` upserts; their types and keys are in ``records.py``):
``view`` (current view, in view change or not), ``slot/<height>`` (the
accepted pre-prepare with its view, the highest-view prepared certificate and
the view of the last commit sent), ``stable`` (the stable checkpoint with its
proof) and ``ckpt/<height>`` (own checkpoints not yet stable). Every vote is
preceded in the action list by the persist of the record that justifies it,
so a replica rebuilt from its records and the committed chain (``ChainTip``)
never sends a vote that conflicts with one it sent before the crash: in the
persisted view it has the accepted proposal for each height, and it never
returns to an older view. On start it re-broadcasts the votes of its
in-flight heights (identical messages), so a whole-network restart continues
where it stopped.

Epochs (consensus/epochs.py)
----------------------------
A replica serves one epoch: one validator set, from the height after its
``base_height`` (0 for genesis) to the epoch's end. Validator indices, n, f,
the quorum and primary rotation are that set's; every message is signed under
the epoch's own domain (the chain id for epoch 0), so a vote never counts in
another epoch, and ``on_message`` refuses a message the driver marks as of
another epoch. A later epoch's replica starts like a genesis one: its low
watermark is the base height, which needs no checkpoint proof (every replica
reaching it executed the certified blocks below it itself), and view 0.

The rule: a change committed at height h takes effect after ``boundary(h)``,
the first checkpoint height at or after h + L. The driver tells the replica
its epoch's end once the executed state holds the change (``on_executed``'s
``epoch_end``, or at construction after a restart). Until then the replica
votes only up to its *horizon*, the executed height + L + 1; once it knows
the end c, never above c, and it keeps nothing for heights above c. Safety:
a change it does not know commits above its executed height e, so it takes
effect above e + L + 1; hence no honest replica ever votes at a height under a
set other than that height's own, every certificate at a height is made of
one set's votes, and the single-set argument above applies height by height.
A NEW-VIEW re-proposes only prepared heights (certified by the set, so inside
the epoch) and the gaps below them.

Liveness at the boundary: with the end known, the primary proposes empty
blocks while nothing is pending, and a backup counts an unreached end as
something it waits for (its progress timer runs), so even an idle network
reaches the end; a dead primary is replaced by a view change as usual. Once c
is executed (``epoch_complete``) the driver starts the next epoch's replica
from the tip; a view change still in progress in the old epoch ends there
(nothing of the old epoch is left to decide). Requests the old replica held
go to the new one (``pending_requests``).

Evidence
--------
Two validly signed PRE-PREPAREs (including a NEW-VIEW's re-proposals),
PREPAREs or COMMITs from one validator for the same height and view with
different digests are reported once as ``Evidence``. Iteration everywhere is
over dicts or sorted lists, never sets.

Invariants
----------
Checked at run time by ``_invariant`` (never compiled away, each O(1)); a
broken one raises ``AssertionError`` rather than let the replica vote on:
the quorum arithmetic (n >= 3f+1, quorum 2f+1 when n = 3f+1, two quorums
share f+1 replicas); at the end of every input, the view and the stable
checkpoint did not go back, the stable checkpoint is at a checkpoint height,
the driver executed only delivered heights, and a replica that has not
executed its stable checkpoint has delivered it or asked for it; at most one
vote per (height, view, kind) leaves, repeated only identical and never in a
view below one voted in; proposals stay inside the watermarks and the
pipeline; slots exist only above the stable checkpoint. The executed height
itself may leave the watermarks: below, after adopting a stable checkpoint
from a NEW-VIEW or a restart, until sync catches up; above, while sync
delivers certified blocks faster than checkpoints become stable.

Memory per peer
---------------
Whatever a validator sends, what the replica keeps for it is bounded:
per height inside the window at most MAX_VOTE_VIEWS views per vote kind
(older views are forgotten; pre-prepares kept stripped), payloads only of
proposals someone honest may commit (accepted, prepared, or f+1 commits),
buffered future messages bounded in count and bytes, one status, at most two
VIEW-CHANGEs (for our view and its newest other), one entry of each
rate-limited answer, evidence keys until the next stable checkpoint. Verified
signatures and fully checked VIEW-CHANGEs are cached (bounded), so a replayed
heavy message costs a hash.

Why the cluster cannot halt for good
------------------------------------
Assume that after time T all messages between the honest replicas (at least
a quorum of them) are delivered within a bound, and requests are pending.

1. *The window moves.* Every honest replica that executed a checkpoint height
   above its stable one repeats its checkpoint each resend tick while it waits;
   honest replicas agree on the root, so each receives a quorum and the
   checkpoint becomes stable everywhere. Idle replicas repeat theirs with
   every heartbeat, so this needs nobody but the primary to wait. A replica that already made it
   stable answers the others' Status with its checkpoint. Nothing that is
   needed for a checkpoint lives only in memory: own checkpoints are persisted.
2. *The views meet.* An honest replica in a view change repeats its
   VIEW-CHANGE; one that is in a view above a peer's answers the peer's
   VIEW-CHANGE with its own for the peer's view, so every honest replica
   collecting votes for a view v gets them from every honest replica that left
   the last normal view below v. Once a quorum is in view change for v, the
   f+1 join rule brings the rest; the primary of v (or, after a timeout that
   doubles each time, of v+1, ...) sends NEW-VIEW, and a replica in an older
   view is pushed it. Timeouts double until they exceed the delivery bound,
   and an honest primary is reached within f+1 views.
3. *Nobody stays behind.* A replica that missed commits learns from the
   Status of f+1 peers that it is behind and fetches the certified blocks;
   while it syncs it does not blame the primary. When fewer than f+1 are ahead
   (commits of one height spread over several views, none complete here: a
   cluster of exactly a quorum on lossy links), a stalled replica asks a single
   peer that claims more for certified blocks, and a peer that delivered a
   height a pipeline ago answers a vote for it with its COMMIT again.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import (
    Action,
    Broadcast,
    Deliver,
    Divergence,
    Evidence,
    NeedSync,
    Persist,
    Rejected,
    Relay,
    Send,
    SetTimer,
    ViewChanged,
)
from consensus.config import ConsensusConfig
from consensus.crypto import CachingVerifier, PayloadRules, Signer, Verifier
from consensus.epochs import horizon
from consensus.messages import (
    Checkpoint,
    Commit,
    CommittedBlock,
    Message,
    NewView,
    NewViewRequest,
    PayloadReply,
    PayloadRequest,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    canonical,
    sign_message,
)
from consensus.new_view import (
    adopted_checkpoint,
    check_new_view,
    check_null_time,
    check_view_change,
    pick_view_changes,
    reproposals,
    select_prepared,
)
from consensus.quorum import CertificateError, verify_commit_certificate
from consensus.records import (
    CHECKPOINT_PREFIX,
    KEY_STABLE,
    KEY_VIEW,
    SLOT_PREFIX,
    SlotRecord,
    StableRecord,
    ViewRecord,
    checkpoint_key,
    decode_checkpoint,
    decode_slot,
    decode_stable,
    decode_view,
    slot_height,
    slot_key,
)

__all__ = [
    "CHECKED_VIEW_CHANGES",
    "LOWER_VIEW_CHANGES",
    "MAX_VOTE_VIEWS",
    "NEVER",
    "ChainTip",
    "Replica",
    "Slot",
]

NEVER = 1 << 62
# views remembered per (vote kind, sender) at one height; older ones are forgotten
MAX_VOTE_VIEWS = 4
# fully checked VIEW-CHANGEs remembered (a replayed one is not checked again)
CHECKED_VIEW_CHANGES = 1_024
# VIEW-CHANGEs for views below ours kept ready for peers still asking for them
LOWER_VIEW_CHANGES = 4


def _digest_of(msg: Message) -> bytes:
    if isinstance(msg, PrePrepare):
        return msg.proposal.digest()
    if isinstance(msg, Prepare | Commit):
        return msg.digest
    return b""


@dataclass(frozen=True)
class ChainTip:
    """The last block the driver committed and executed (height 0 = genesis)."""

    height: int
    timestamp: int
    state_root: bytes


def _height_of(msg: Message) -> int:
    """The height a buffered message is about (0 for those about no height)."""
    if isinstance(msg, PrePrepare | PayloadReply):
        return msg.proposal.height
    if isinstance(msg, Prepare | Commit | Checkpoint | PayloadRequest):
        return msg.height
    return 0


def _weight(msg: Message) -> int:
    """Rough bytes a buffered message holds (its payload plus the envelope)."""
    if isinstance(msg, PrePrepare):
        return 256 + sum(map(len, msg.payload))
    return 256


def _invariant(ok: bool, what: str, *details: object) -> None:
    """Stop at a broken invariant (TigerBeetle style): a replica whose own state
    contradicts what it relies on must not go on voting. Unlike ``assert`` it
    is never compiled away; every check is O(1) and ``details`` are formatted
    only on failure."""
    if not ok:
        raise AssertionError(f"consensus invariant broken: {what} {details}")


def _check_quorums(config: ConsensusConfig) -> None:
    """The quorum arithmetic every safety argument here rests on."""
    n, f, q = config.n, config.f, config.quorum
    _invariant(n >= 3 * f + 1, "n >= 3f + 1", n, f)
    _invariant(config.weak_quorum == f + 1, "weak quorum is f + 1", config.weak_quorum, f)
    _invariant(n != 3 * f + 1 or q == 2 * f + 1, "quorum is 2f + 1 when n = 3f + 1", q, n, f)
    _invariant(2 * q - n >= f + 1, "two quorums share f + 1 replicas", q, n, f)
    _invariant(q <= n - f, "a quorum exists without the f faulty replicas", q, n, f)


@dataclass
class Slot:
    """Everything known about one height inside the watermarks."""

    height: int
    accepted_view: int = -1
    accepted: PrePrepare | None = None  # the pre-prepare we vote for in accepted_view
    prepared: PreparedCert | None = None  # highest-view prepared certificate
    commit_view: int = -1  # view of the last COMMIT we sent
    prepare_sent_view: int = -1
    # tallies: (view, digest) -> sender -> vote; any view (commits deliver passively)
    prepares: dict[tuple[int, bytes], dict[int, Prepare]] = field(default_factory=dict)
    commits: dict[tuple[int, bytes], dict[int, Commit]] = field(default_factory=dict)
    # first vote per (kind, view, sender), for equivocation evidence (pre-prepares
    # stripped), and the views remembered per (kind, sender): at most MAX_VOTE_VIEWS
    first_votes: dict[tuple[str, int, int], Message] = field(default_factory=dict)
    vote_views: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    # full payloads by proposal digest: of the accepted, prepared or committed
    # proposal, or of one f+1 replicas committed (never an unvoted one)
    payloads: dict[bytes, tuple[Proposal, tuple[bytes, ...]]] = field(default_factory=dict)
    committed: CommittedBlock | None = None
    # who may hold a payload we lack, and when we last asked
    payload_hints: tuple[int, ...] = ()
    payload_asked_at: int = -NEVER
    payload_tries: int = 0
    # per vote kind ("prepare": our PREPARE or, as primary, our PRE-PREPARE;
    # "commit"), the (view, digest) of the last vote we sent since we started
    votes_sent: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    def record(self) -> SlotRecord:
        if self.prepared is not None and self.prepared.pre_prepare is self.accepted:
            return SlotRecord(self.accepted_view, None, self.prepared, self.commit_view, True)
        return SlotRecord(self.accepted_view, self.accepted, self.prepared, self.commit_view)


# ------------------------------------------------------------ replica state
# The replica's fields beyond the core (view, watermarks, delivered height,
# slots), grouped by what they serve. Plain mutable records: the transitions
# that change them all live in ``Replica``.


@dataclass(slots=True)
class Requests:
    """The requests the replica knows of and has not seen delivered, oldest first."""

    # every known uncommitted request: id -> (request, arrival time)
    pending: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    # those of them in no proposal accepted in the current view (what a primary
    # may batch), and their total size
    unproposed: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)
    unproposed_bytes: int = 0
    # delivered request ids -> height, refused if offered again (kept a window)
    recent_ids: dict[bytes, int] = field(default_factory=dict)
    # (view, oldest unproposed request) last relayed to the primary; next relay
    relayed: tuple[int, bytes] | None = None
    relay_next: int = 0


@dataclass(slots=True)
class Checkpoints:
    """Checkpoints above the stable one, and our own state roots."""

    # height -> sender -> CHECKPOINT (ours included), heights above the low watermark
    votes: dict[int, dict[int, Checkpoint]] = field(default_factory=dict)
    # our own signed checkpoints, persisted, heights >= the low watermark
    own: dict[int, Checkpoint] = field(default_factory=dict)
    # our state root at checkpoint heights (and the chain tip, the low watermark)
    own_roots: dict[int, bytes] = field(default_factory=dict)


@dataclass(slots=True)
class FutureBuffer:
    """Messages for a later view or beyond the high watermark, replayed when
    their time comes; bounded per sender in count and ``byte_limit`` bytes."""

    byte_limit: int
    queues: dict[int, list[Message]] = field(default_factory=dict)  # sender -> messages
    weights: dict[int, int] = field(default_factory=dict)  # sender -> bytes they hold


@dataclass(slots=True)
class ViewChangeState:
    """VIEW-CHANGEs and NEW-VIEWs: ours, the others', and what we learnt from them."""

    # view -> sender -> VIEW-CHANGE (per sender: for our view and its newest other)
    votes: dict[int, dict[int, ViewChange]] = field(default_factory=dict)
    own: ViewChange | None = None  # ours, while we change view
    quorum_at: int = NEVER  # when we first held a quorum for the view we change to
    resend_at: int = NEVER  # when ours goes out again
    new_view: NewView | None = None  # the NEW-VIEW of our current view
    new_view_sent: set[int] = field(default_factory=set)  # views we sent NEW-VIEW for
    higher_views: dict[int, int] = field(default_factory=dict)  # sender -> newer view seen
    checked: dict[bytes, None] = field(default_factory=dict)  # proofs checked (bounded)
    lower: dict[int, ViewChange] = field(default_factory=dict)  # ours for views below ours


@dataclass(slots=True)
class Timers:
    """Deadlines and the clocks they run from (milliseconds of the driver's clock)."""

    armed_at: int = NEVER  # the last SetTimer
    status_at: int = NEVER  # the next Status heartbeat
    retransmit_at: int = NEVER  # the next repeat of our votes while waiting
    was_waiting: bool = False  # waiting for something at the end of the last input
    last_progress: int = 0  # the progress clock: last delivery or start of waiting
    view_entered_at: int = 0
    backoff: int = 0  # consecutive view changes without a delivery


@dataclass(slots=True)
class SyncState:
    """Catching up with certified blocks fetched by the driver (``NeedSync``)."""

    target: int = 0  # the height asked for
    hints: tuple[int, ...] = ()  # peers that claimed it
    since: int = 0  # when we fell behind
    asked_at: int = -NEVER
    blocks: dict[int, CommittedBlock] = field(default_factory=dict)  # fetched, not delivered
    peer_heights: dict[int, int] = field(default_factory=dict)  # per peer, its Status height
    ahead: dict[int, int] = field(default_factory=dict)  # per sender, a checkpoint far ahead


@dataclass(slots=True)
class AnswerLimits:
    """Per peer, when we last answered it (at most once per resend interval)."""

    answered: dict[tuple[str, int, int], int] = field(default_factory=dict)  # (kind, peer, h)
    last_push: dict[int, int] = field(default_factory=dict)  # our NEW-VIEW pushed to it
    last_request: dict[int, int] = field(default_factory=dict)  # its NEW-VIEW asked for


class Replica:
    """One validator's PBFT state machine. See the module docstring."""

    def __init__(
        self,
        config: ConsensusConfig,
        me: int,
        signer: Signer,
        verifier: Verifier,
        rules: PayloadRules,
        *,
        records: Mapping[bytes, bytes] | None = None,
        tip: ChainTip | None = None,
        epoch_end: int | None = None,
    ) -> None:
        if not 0 <= me < config.n:
            raise ValueError(f"consensus: replica index {me} outside validator set of {config.n}")
        if config.base_height > 0 and (tip is None or tip.height < config.base_height):
            raise ValueError(
                f"consensus: epoch {config.epoch} starts after height {config.base_height}, "
                f"the chain is at {tip.height if tip else 0}"
            )
        if epoch_end is not None and (
            epoch_end <= config.base_height or epoch_end % config.checkpoint_interval
        ):
            raise ValueError(f"consensus: epoch {config.epoch} cannot end at height {epoch_end}")
        _check_quorums(config)
        self.config = config
        self.me = me
        self._signer = signer
        self._verifier = CachingVerifier(verifier)
        self._rules = rules
        self._chain = config.chain_id
        self._domain = config.signing_domain  # what this epoch's messages are signed under
        self._empty_root = rules.payload_root(())
        tip = tip or ChainTip(0, 0, b"")

        self._view = 0
        self._in_vc = False
        self._normal_view = 0  # the last view we were in normally (not changing view)
        self._delivered = tip.height  # last height handed to the driver
        self._delivered_ts = tip.timestamp
        self._executed = tip.height
        self._low = config.base_height  # the stable checkpoint: the low watermark
        self._stable_root = b""
        self._stable_proof: tuple[Checkpoint, ...] = ()
        # the last height of this epoch, once the executed state says so (a
        # replica restarted after the change committed is told at once)
        self._epoch_end = NEVER if epoch_end is None else epoch_end
        self._slots: dict[int, Slot] = {}
        # the highest height proposed (accepted) in this view or delivered, and
        # its timestamp; the highest height f+1 replicas sent COMMITs for
        self._last_proposed = tip.height
        self._last_proposed_ts = tip.timestamp
        self._max_commit_height = tip.height
        self._evidence_seen: dict[tuple[str, int, int, int], None] = {}
        self._requests = Requests()
        self._ckpt = Checkpoints()
        if tip.state_root:
            self._ckpt.own_roots[tip.height] = tip.state_root
        self._future_buffer = FutureBuffer((config.pipeline_window + 1) * config.batch_max_bytes)
        self._vc = ViewChangeState()
        self._timers = Timers()
        self._sync = SyncState()
        self._limits = AnswerLimits()
        self._restore(records or {})
        # (view, low watermark) at the end of the last input: neither goes back
        self._monotonic = (self._view, self._low)

    # ------------------------------------------------------------------ state
    @property
    def view(self) -> int:
        return self._view

    @property
    def primary(self) -> int:
        return self.config.primary(self._view)

    @property
    def in_view_change(self) -> bool:
        return self._in_vc

    @property
    def height(self) -> int:
        """The last delivered (committed, in order) height."""
        return self._delivered

    @property
    def low_watermark(self) -> int:
        return self._low

    @property
    def high_watermark(self) -> int:
        return self._low + self.config.watermark_window

    @property
    def pending_count(self) -> int:
        return len(self._requests.pending)

    def in_flight(self) -> list[dict[str, object]]:
        """Undelivered heights with vote counts (for the admin API)."""
        out: list[dict[str, object]] = []
        for h in sorted(self._slots):
            s = self._slots[h]
            if h <= self._delivered:
                continue
            digest = s.accepted.proposal.digest() if s.accepted else b""
            key = (s.accepted_view, digest)
            out.append(
                {
                    "height": h,
                    "view": s.accepted_view,
                    "digest": digest.hex(),
                    "prepares": len(s.prepares.get(key, {})),
                    "commits": len(s.commits.get(key, {})),
                    "prepared": s.prepared is not None,
                }
            )
        return out

    def _restore(self, records: Mapping[bytes, bytes]) -> None:
        raw = records.get(KEY_VIEW)
        if raw is not None:
            vr = decode_view(raw)
            self._view, self._in_vc = vr.view, vr.in_view_change
            self._normal_view = vr.normal_view if vr.in_view_change else vr.view
        raw = records.get(KEY_STABLE)
        if raw is not None:
            st = decode_stable(raw)
            self._low, self._stable_root, self._stable_proof = st.height, st.state_root, st.proof
        for key in sorted(records):
            if key.startswith(CHECKPOINT_PREFIX):
                cp = decode_checkpoint(records[key])
                if cp.height >= self._low and cp.sender == self.me:
                    self._ckpt.own[cp.height] = cp
                    self._ckpt.own_roots[cp.height] = cp.state_root
                    if cp.height > self._low:  # our own vote toward its quorum
                        self._ckpt.votes.setdefault(cp.height, {})[self.me] = cp
                continue
            if not key.startswith(SLOT_PREFIX):
                continue
            h = slot_height(key)
            if h <= self._low:
                continue
            rec = decode_slot(records[key])
            slot = self._slot(h)
            accepted = rec.accepted_pre_prepare()
            slot.accepted_view, slot.accepted = rec.accepted_view, accepted
            slot.prepared, slot.commit_view = rec.prepared, rec.commit_view
            if accepted is not None:
                self._keep_payload(slot, accepted)
                if rec.accepted_view == self._view:
                    self._last_proposed = max(self._last_proposed, h)
                    slot.prepare_sent_view = rec.accepted_view
            if rec.prepared is not None:
                self._keep_payload(slot, rec.prepared.pre_prepare)

    # ------------------------------------------------------------ entry points
    def start(self, now: int) -> list[Action]:
        """Called once after construction (fresh or restored)."""
        out: list[Action] = []
        self._timers.view_entered_at = now
        self._timers.last_progress = now
        # tell the others where we are: those ahead answer, and we sync if f+1 are
        self._broadcast_status(now, out)
        if self._in_vc:
            self._vc.own = self._make_view_change(self._view)
            self._vc.votes.setdefault(self._view, {})[self.me] = self._vc.own
            self._vc.resend_at = now + self._retransmit_interval()
            out.append(Broadcast(self._vc.own))
        else:
            for h in sorted(self._slots):
                out.extend(self._resend_votes(self._slots[h], now))
        if self._executed < self._low:
            out.extend(self._need_sync(self._low, (), now))
        self._finish(now, out)
        return out

    def on_request(self, request: bytes, now: int) -> list[Action]:
        if len(request) > self.config.batch_max_bytes:
            return [Rejected(-1, "request-too-large")]
        rid = self._rules.request_id(request)
        if rid in self._requests.pending or rid in self._requests.recent_ids:
            return []
        self._requests.pending[rid] = self._requests.unproposed[rid] = (request, now)
        self._requests.unproposed_bytes += len(request)
        out: list[Action] = []
        if self._is_primary_active():
            self._maybe_propose(now, out)
        self._finish(now, out)
        return out

    def on_timer(self, now: int) -> list[Action]:
        out: list[Action] = []
        cfg = self.config
        if now >= self._timers.status_at:
            self._broadcast_status(now, out)
        if self._in_vc:
            if now >= self._vc.quorum_at + self._timeout():
                self._timers.backoff += 1
                self._start_view_change(self._view + 1, "new-view timeout", now, out)
            elif now >= self._vc.resend_at and self._vc.own is not None:
                # repeated at most every half timeout, so a lost VIEW-CHANGE is
                # sent again before this replica could escalate past its view
                self._vc.resend_at = now + self._retransmit_interval()
                out.append(Broadcast(self._vc.own))
                self._resend_checkpoints(out)
        else:
            if now >= self._progress_deadline():
                self._timers.backoff += 1
                self._relay_to_all(out)
                self._start_view_change(self._view + 1, "progress timeout", now, out)
            elif now >= self._request_deadline():
                self._timers.backoff += 1
                self._relay_to_all(out)
                self._start_view_change(self._view + 1, "request timeout", now, out)
            elif now >= self._relay_deadline():
                self._relay(now, out)
            elif now >= self._timers.retransmit_at:
                # lost votes stall a height; repeating ours (identical messages)
                # often completes it well before a view change would
                self._timers.retransmit_at = now + self._retransmit_interval()
                for h in sorted(self._slots):
                    out.extend(self._resend_votes(self._slots[h], now))
                # a lost checkpoint quorum stalls the window for good unless
                # repeated (the status carries them); a lost commit is repaired
                # by peers that are ahead
                self._broadcast_status(now, out)
        sync_due = now >= self._sync.asked_at + cfg.resend_interval_ms
        if self._sync.target > self._delivered and sync_due:
            out.extend(self._need_sync(self._sync.target, (), now, force=True))
        self._finish(now, out)
        return out

    def on_message(self, msg: Message, now: int, epoch: int = 0) -> list[Action]:
        """A message of ``epoch`` (the driver's routing says which); another epoch's
        is refused: its sender index names another set."""
        out: list[Action] = []
        sender = msg.sender
        if epoch != self.config.epoch:
            return [Rejected(-1, "wrong-epoch")]
        if not 0 <= sender < self.config.n or sender == self.me:
            return [Rejected(sender, "unknown-sender")]
        if not self._verifier.verify(sender, msg.signing_bytes(self._domain), msg.sig):
            return [Rejected(sender, "bad-signature")]
        _HANDLERS[type(msg)](self, msg, now, out)
        self._finish(now, out)
        return out

    def on_executed(
        self, height: int, state_root: bytes, now: int, *, epoch_end: int | None = None
    ) -> list[Action]:
        """Block ``height`` was executed to ``state_root``. ``epoch_end``: the last
        height of this epoch, once the executed state holds a validator change
        (given with every later block too; it never moves)."""
        out: list[Action] = []
        if height != self._executed + 1:
            raise ValueError(
                f"consensus: executed height {height} out of order (expected {self._executed + 1})"
            )
        if epoch_end is not None:
            self._learn_epoch_end(epoch_end, height)
        stalled_by_horizon = self._low > self._executed
        self._executed = height
        K = self.config.checkpoint_interval
        if height % K == 0 or height == self._low:
            self._ckpt.own_roots[height] = state_root
        if height == self._low and self._stable_root and state_root != self._stable_root:
            out.append(Divergence(height, state_root, self._stable_root))
        if height % K == 0:
            # persisted so that it can be repeated after a restart until stable
            cp = self._sign(Checkpoint(height, state_root, self.me))
            self._ckpt.own[height] = cp
            out.append(Persist(((checkpoint_key(height), canonical(cp)),)))
            out.append(Broadcast(cp))
            self._add_checkpoint(cp, now, out)
        if stalled_by_horizon:  # the horizon moved: buffered votes may be ours now
            self._replay_future(now, out)
        self._finish(now, out)
        return out

    def _learn_epoch_end(self, epoch_end: int, height: int) -> None:
        if self._epoch_end == epoch_end:
            return
        _invariant(
            self._epoch_end == NEVER
            and epoch_end % self.config.checkpoint_interval == 0
            and epoch_end >= height
            and epoch_end >= horizon(self._executed, self.config.watermark_window) - 1,
            "an epoch end that moved, is off a checkpoint or inside the known horizon",
            self._epoch_end,
            epoch_end,
            self._executed,
        )
        self._epoch_end = epoch_end
        # nothing above the end is ours: forget what we kept for it
        for sender in list(self._future_buffer.queues):
            kept = [m for m in self._future_buffer.queues[sender] if _height_of(m) <= epoch_end]
            self._future_buffer.queues[sender] = kept
            self._future_buffer.weights[sender] = sum(_weight(m) for m in kept)

    @property
    def epoch_end(self) -> int | None:
        """The last height of this replica's epoch, once known."""
        return self._epoch_end if self._epoch_end < NEVER else None

    def pending_requests(self) -> list[bytes]:
        """The requests known and not delivered, oldest first (handed to the next
        epoch's replica, which would otherwise never hear of them again)."""
        return [req for req, _arrived in self._requests.pending.values()]

    def chain_tip(self) -> ChainTip:
        """The last delivered block's height and timestamp, and our root there if we
        executed it (what the next epoch's replica starts from)."""
        root = self._ckpt.own_roots.get(self._delivered, b"")
        return ChainTip(self._delivered, self._delivered_ts, root)

    @property
    def epoch_complete(self) -> bool:
        """Every height of this epoch is executed: the driver hands over to the
        next epoch's replica (consensus/epochs.py)."""
        return self._executed >= self._epoch_end

    def on_committed_block(self, block: CommittedBlock, now: int) -> list[Action]:
        """A block fetched by sync: delivered once its certificate checks out."""
        out: list[Action] = []
        h = block.height
        if h <= self._delivered or h > min(
            self._delivered + self.config.watermark_window, self._limit()
        ):
            return out
        try:
            self._check_block(block)
        except CertificateError as exc:
            return [Rejected(-1, f"bad-sync-block: {exc}")]
        self._sync.blocks[h] = block
        self._try_deliver(now, out)
        self._finish(now, out)
        return out

    # ---------------------------------------------------------------- helpers
    def _sign(self, msg: Signed) -> Signed:
        return sign_message(msg, self._signer.sign, self._domain)

    def _slot(self, h: int) -> Slot:
        s = self._slots.get(h)
        if s is None:
            _invariant(h > self._low, "a slot at or below the stable checkpoint", h, self._low)
            s = self._slots[h] = Slot(h)
        return s

    def _persist_slot(self, slot: Slot, out: list[Action]) -> None:
        out.append(Persist(((slot_key(slot.height), canonical(slot.record())),)))

    def _persist_view(self, out: list[Action]) -> None:
        record = ViewRecord(self._view, self._in_vc, self._normal_view)
        out.append(Persist(((KEY_VIEW, canonical(record)),)))

    def _may_answer(self, kind: str, peer: int, now: int, height: int = 0) -> bool:
        """At most one answer of ``kind`` (about ``height``) to ``peer`` per resend interval."""
        key = (kind, peer, height)
        if now < self._limits.answered.get(key, -NEVER) + self.config.resend_interval_ms:
            return False
        self._limits.answered[key] = now
        return True

    def _is_full(self, pp: PrePrepare) -> bool:
        """True unless ``pp`` was stripped of a non-empty payload."""
        return bool(pp.payload) or pp.proposal.payload_root == self._empty_root

    def _keep_payload(self, slot: Slot, pp: PrePrepare) -> None:
        if self._is_full(pp):
            slot.payloads.setdefault(pp.proposal.digest(), (pp.proposal, pp.payload))

    def _with_payload(self, slot: Slot, pp: PrePrepare) -> PrePrepare | None:
        """``pp`` with its payload, when we hold it (signatures do not cover it)."""
        if self._is_full(pp):
            return pp
        got = slot.payloads.get(pp.proposal.digest())
        return pp.with_payload(got[1]) if got is not None else None

    def _broadcast_status(self, now: int, out: list[Action]) -> None:
        """The heartbeat; our checkpoints that are not stable yet go with it, so an
        idle replica (nothing pending) still helps a lost quorum form."""
        self._timers.status_at = now + self.config.status_interval_ms
        out.append(Broadcast(self._status()))
        self._resend_checkpoints(out)

    def _status(self) -> Status:
        return self._sign(Status(self._view, self._delivered, self._low, self.me))

    def _resend_checkpoints(self, out: list[Action]) -> None:
        """Repeat our checkpoints that are not stable yet (identical messages)."""
        for h in sorted(self._ckpt.own):
            if h > self._low:
                out.append(Broadcast(self._ckpt.own[h]))

    def _timeout(self) -> int:
        cfg = self.config
        grown = cfg.view_change_timeout_ms << min(self._timers.backoff, 30)
        return min(grown, cfg.view_change_timeout_max_ms)

    def _retransmit_interval(self) -> int:
        cfg = self.config
        return max(1, min(cfg.resend_interval_ms, cfg.view_change_timeout_ms // 2))

    def _is_primary_active(self) -> bool:
        return not self._in_vc and self.config.primary(self._view) == self.me

    def _in_window(self, h: int) -> bool:
        return self._low < h <= min(self._low + self.config.watermark_window, self._limit())

    def _limit(self) -> int:
        """The highest height this replica may vote on: its epoch's last once known,
        else its horizon, the last height whose validator set it knows for sure
        (consensus/epochs.py says why no height then straddles two sets)."""
        if self._epoch_end < NEVER:
            return self._epoch_end
        return horizon(self._executed, self.config.watermark_window)

    def _waiting(self) -> bool:
        """Something proposed or committed above the delivered height, or the epoch's
        end not reached yet (its primary fills the way with empty blocks)."""
        return (
            max(self._last_proposed, self._max_commit_height) > self._delivered
            or self._delivered < self._epoch_end < NEVER
        )

    def _sync_grace(self, deadline: int) -> int:
        """While we sync (the others are ahead, the primary is not to blame) a view
        change waits two timeouts from the sync request; then it may go ahead."""
        if self._sync.target > self._delivered:
            return max(deadline, self._sync.since + 2 * self._timeout())
        return deadline

    def _progress_deadline(self) -> int:
        if not (self._requests.pending or self._waiting()):
            return NEVER
        return self._sync_grace(
            max(self._timers.last_progress, self._timers.view_entered_at) + self._timeout()
        )

    def _relay_deadline(self) -> int:
        """When to hand the primary the requests no proposal holds yet (PBFT's
        backups forward requests: gossip may never have reached the primary):
        half a timeout after the oldest arrived, once per oldest request and view,
        at most once per resend interval."""
        if (
            self._in_vc
            or not self._requests.unproposed
            or self.config.primary(self._view) == self.me
        ):
            return NEVER
        rid, (_req, arrived) = next(iter(self._requests.unproposed.items()))
        if self._requests.relayed == (self._view, rid):
            return NEVER
        due = max(arrived, self._timers.view_entered_at) + self._timeout() // 2
        return max(due, self._requests.relay_next)

    def _relay_to_all(self, out: list[Action]) -> None:
        """Before blaming the primary for pending requests, hand the oldest of them
        to every other replica (PBFT's client re-broadcast): requests that only
        this replica knows would otherwise make it leave the view alone."""
        if not self._requests.pending:
            return
        batch = tuple(req for req, _arrived in self._requests.pending.values())[
            : self.config.batch_max_count
        ]
        for peer in range(self.config.n):
            if peer != self.me:
                out.append(Relay(peer, batch))

    def _relay(self, now: int, out: list[Action]) -> None:
        self._requests.relayed = (self._view, next(iter(self._requests.unproposed)))
        self._requests.relay_next = now + self.config.resend_interval_ms
        batch = [req for req, _arrived in self._requests.unproposed.values()]
        out.append(
            Relay(self.config.primary(self._view), tuple(batch[: self.config.batch_max_count]))
        )

    def _request_budget(self) -> int:
        base = self.config.request_timeout_ms
        cap = max(base, self.config.view_change_timeout_max_ms)
        return min(base << min(self._timers.backoff, 30), cap)

    def _request_deadline(self) -> int:
        if not self._requests.pending:
            return NEVER
        oldest = next(iter(self._requests.pending.values()))[1]
        return self._sync_grace(max(oldest, self._timers.view_entered_at) + self._request_budget())

    def _can_propose_next(self) -> bool:
        h = self._last_proposed + 1
        return (
            h - self._delivered <= self.config.pipeline_window
            and self._in_window(h)
            and not self._payload_missing_below(h)
        )

    def _payload_missing_below(self, h: int) -> bool:
        """Whether a proposal we accepted below ``h`` still lacks its payload (a NEW-VIEW
        re-proposal of a value prepared without us). Its requests may be in our queue
        too; proposing before the payload arrives (``_on_payload_reply`` then forgets
        them) would put them in a block twice."""
        for height in range(self._delivered + 1, h):
            slot = self._slots.get(height)
            if slot is not None and slot.accepted is not None and not self._is_full(slot.accepted):
                return True
        return False

    def _batch_deadline(self) -> int:
        if not self._is_primary_active() or not self._can_propose_next():
            return NEVER  # a delivery or a new window will call _maybe_propose
        for _req, arrived in self._requests.unproposed.values():
            return arrived + self.config.batch_timeout_ms
        return NEVER

    def _finish(self, now: int, out: list[Action]) -> None:
        """Common tail of every entry point: propose if due, arm the timer.

        The progress clock starts when the replica starts waiting for
        something, so a request arriving after an idle hour is not overdue.
        """
        if self._is_primary_active():
            self._maybe_propose(now, out)
        waiting = bool(self._requests.pending) or self._waiting()
        if waiting and not self._timers.was_waiting:
            self._timers.last_progress = now
            self._timers.retransmit_at = now + self._retransmit_interval()
        elif not waiting:
            self._timers.retransmit_at = NEVER
        self._timers.was_waiting = waiting
        if self._in_vc:
            at = min(
                self._vc.quorum_at + self._timeout(), self._vc.resend_at, self._timers.status_at
            )
        else:
            at = min(
                self._progress_deadline(),
                self._request_deadline(),
                self._batch_deadline(),
                self._timers.retransmit_at,
                self._relay_deadline(),
                self._timers.status_at,
            )
        if self._sync.target > self._delivered:
            at = min(at, self._sync.asked_at + self.config.resend_interval_ms)
        self._check_invariants()
        if at >= NEVER:
            self._timers.armed_at = NEVER
            return
        at = max(at, now + 1)
        if at != self._timers.armed_at:
            self._timers.armed_at = at
            out.append(SetTimer(at))

    def _check_invariants(self) -> None:
        """What must hold at the end of every input (all O(1))."""
        view, low = self._monotonic
        _invariant(self._view >= view, "the view went back", view, self._view)
        _invariant(self._low >= low, "the stable checkpoint went back", low, self._low)
        self._monotonic = (self._view, self._low)
        _invariant(
            self._low % self.config.checkpoint_interval == 0,
            "the stable checkpoint is not at a checkpoint height",
            self._low,
        )
        _invariant(
            self._normal_view <= self._view and (self._in_vc or self._normal_view == self._view),
            "the last normal view is the view, or below it while changing view",
            self._normal_view,
            self._view,
            self._in_vc,
        )
        # the driver executes only what was delivered, and a replica that has not
        # executed its stable checkpoint has delivered it or asked for it (NeedSync)
        _invariant(
            self._executed <= self._delivered,
            "executed a height never delivered",
            self._executed,
            self._delivered,
        )
        _invariant(
            self._executed >= self._low or max(self._delivered, self._sync.target) >= self._low,
            "below the low watermark without fetching it",
            self._executed,
            self._delivered,
            self._sync.target,
            self._low,
        )

    def _note_vote(self, slot: Slot, kind: str, view: int, digest: bytes) -> None:
        """Called for every vote (PRE-PREPARE/PREPARE or COMMIT) that leaves: at most
        one per (height, view, kind), sent again only identical, and never in a
        view below one we already voted in."""
        last = slot.votes_sent.get(kind)
        if last is not None:
            _invariant(
                view > last[0] or (view == last[0] and digest == last[1]),
                f"a second {kind} vote at one height",
                slot.height,
                last[0],
                view,
            )
        slot.votes_sent[kind] = (view, digest)

    # -------------------------------------------------------------- proposing
    def _maybe_propose(self, now: int, out: list[Action]) -> None:
        cfg = self.config
        # toward a known epoch end, empty blocks while nothing is pending: an idle
        # network would otherwise never reach the boundary and the change never
        # take effect
        while (
            not self._requests.unproposed
            and self._last_proposed < self._epoch_end < NEVER
            and self._can_propose_next()
        ):
            self._propose(self._last_proposed + 1, (), now, out)
        while self._requests.unproposed and self._can_propose_next():
            if (
                len(self._requests.unproposed) < cfg.batch_max_count
                and self._requests.unproposed_bytes < cfg.batch_max_bytes
                and now < next(iter(self._requests.unproposed.values()))[1] + cfg.batch_timeout_ms
            ):
                return  # neither a full batch nor an expired batch timer
            if self._drop_in_flight_requests():
                continue  # the queue changed: judge the batch again
            h = self._last_proposed + 1
            batch: list[bytes] = []
            size = 0
            for req, _arrived in self._requests.unproposed.values():
                if len(batch) >= cfg.batch_max_count or size + len(req) > cfg.batch_max_bytes:
                    break
                batch.append(req)
                size += len(req)
            self._propose(h, tuple(batch), now, out)

    def _drop_in_flight_requests(self) -> bool:
        """Take out of the queue the requests of proposals we accepted and that are not
        delivered yet; whether there were any. They got back in after a restart (the
        mempool hands every pending request to the new replica, which restored its
        accepted proposals from its records) or were gossiped again; proposed once
        more, they would be in the chain twice. Once per proposal: O(window x batch)."""
        dropped = False
        for height in range(self._delivered + 1, self._last_proposed + 1):
            slot = self._slots.get(height)
            if slot is None or slot.accepted is None:
                continue
            for req in slot.accepted.payload:
                rid = self._rules.request_id(req)
                if self._requests.unproposed.pop(rid, None) is not None:
                    self._requests.unproposed_bytes -= len(req)
                    dropped = True
        return dropped

    def _propose(self, h: int, payload: tuple[bytes, ...], now: int, out: list[Action]) -> None:
        _invariant(
            self._low < h <= self._low + self.config.watermark_window
            and h - self._delivered <= self.config.pipeline_window,
            "a proposal outside the watermarks or the pipeline",
            h,
            self._low,
            self._delivered,
        )
        ts = max(now, self._last_proposed_ts + 1, self._delivered_ts + 1)
        proposal = Proposal(self._chain, h, ts, self.me, self._rules.payload_root(payload))
        pp = self._sign(PrePrepare(self._view, proposal, payload, self.me))
        self._last_proposed_ts = ts
        self._accept_pre_prepare(pp, now, out, own=True)

    def _accept_pre_prepare(
        self, pp: PrePrepare, now: int, out: list[Action], *, own: bool, send: bool = True
    ) -> None:
        """Record ``pp`` as the proposal we vote for at its height in the current view.

        The primary's own pre-prepare counts as its prepare: it broadcasts the
        pre-prepare (unless it was sent inside a NEW-VIEW); a backup broadcasts
        a PREPARE. Either way the slot is persisted first.
        """
        h = pp.height
        slot = self._slot(h)
        digest = pp.proposal.digest()
        pp = self._with_payload(slot, pp) or pp
        slot.accepted_view, slot.accepted = pp.view, pp
        self._keep_payload(slot, pp)
        self._last_proposed = max(self._last_proposed, h)
        self._last_proposed_ts = max(self._last_proposed_ts, pp.proposal.timestamp)
        self._forget_requests(pp.payload)
        self._persist_slot(slot, out)
        first_vote = slot.prepare_sent_view < pp.view
        slot.prepare_sent_view = pp.view
        if own:
            self._note_vote(slot, "prepare", pp.view, digest)  # (or inside the NEW-VIEW)
            if send:
                out.append(Broadcast(pp))
        elif first_vote:
            prep = self._sign(Prepare(pp.view, h, digest, self.me))
            self._note_vote(slot, "prepare", pp.view, digest)
            out.append(Broadcast(prep))
            self._tally_prepare(prep, now, out)
        self._check_prepared(slot, now, out)
        self._try_deliver(now, out)

    def _forget_requests(self, payload: tuple[bytes, ...]) -> None:
        """Requests in a proposal we vote for are no longer ours to propose."""
        for req in payload:
            if self._requests.unproposed.pop(self._rules.request_id(req), None) is not None:
                self._requests.unproposed_bytes -= len(req)

    # --------------------------------------------------------------- handlers
    def _view_gate(self, msg: Message, view: int, now: int, out: list[Action]) -> bool:
        """True when a normal-case message of ``view`` may be processed now."""
        if view == self._view and not self._in_vc:
            return True
        if view > self._view or (view == self._view and self._in_vc):
            self._buffer(msg)
            self._note_higher_view(msg.sender, view, now, out)
        elif view < self._view:
            self._push_new_view(msg.sender, now, out)
        return False

    def _on_pre_prepare(self, pp: PrePrepare, now: int, out: list[Action]) -> None:
        h = pp.height
        if pp.sender != self.config.primary(pp.view):
            out.append(Rejected(pp.sender, "pre-prepare-not-from-primary"))
            return
        if not self._check_proposal(pp, out) or h <= self._low or h > self._epoch_end:
            return
        if not self._in_window(h):
            self._buffer(pp)
            return
        if pp.view > self._view or (pp.view == self._view and self._in_vc):
            self._view_gate(pp, pp.view, now, out)  # buffered, replayed in its view
            return
        digest = pp.proposal.digest()
        slot = self._slot(h)
        if not self._admit_vote(slot, "pp", pp.view, pp.sender, pp, digest, out):
            return
        if pp.view < self._view and self._payload_wanted(slot, digest):
            # too old to vote on, still a payload source for a commit certificate
            self._keep_payload(slot, pp)
            self._try_deliver(now, out)
        if not self._view_gate(pp, pp.view, now, out) or slot.accepted_view == pp.view:
            return
        if pp.proposal.proposer != pp.sender:
            out.append(Rejected(pp.sender, "pre-prepare-proposer-mismatch"))
        elif pp.proposal.timestamp > now + self.config.max_clock_drift_ms:
            out.append(Rejected(pp.sender, "pre-prepare-timestamp-ahead"))
        elif h == self._delivered + 1 and pp.proposal.timestamp <= self._delivered_ts:
            out.append(Rejected(pp.sender, "pre-prepare-timestamp-not-increasing"))
        elif slot.committed is not None and slot.committed.proposal.digest() != digest:
            out.append(Rejected(pp.sender, "pre-prepare-conflicts-with-committed"))
        elif h <= self._delivered and slot.committed is None:
            return  # delivered by sync: we cannot tell whether it matches, stay silent
        else:
            self._accept_pre_prepare(pp, now, out, own=False)

    def _check_proposal(self, pp: PrePrepare, out: list[Action]) -> bool:
        p = pp.proposal
        cfg = self.config
        if p.chain_id != self._chain:
            out.append(Rejected(pp.sender, "wrong-chain"))
            return False
        if p.height < 1 or not 0 <= p.proposer < cfg.n:
            out.append(Rejected(pp.sender, "malformed-proposal"))
            return False
        if len(pp.payload) > cfg.batch_max_count or sum(map(len, pp.payload)) > cfg.batch_max_bytes:
            out.append(Rejected(pp.sender, "payload-too-large"))
            return False
        if self._rules.payload_root(pp.payload) != p.payload_root:
            out.append(Rejected(pp.sender, "payload-root-mismatch"))
            return False
        if not self._rules.payload_valid(pp.payload):
            out.append(Rejected(pp.sender, "payload-invalid"))
            return False
        return True

    def _admit_vote(
        self,
        slot: Slot,
        kind: str,
        view: int,
        sender: int,
        msg: Message,
        digest: bytes,
        out: list[Action],
    ) -> bool:
        """Record the first vote of its kind per view; False when ``msg`` conflicts
        with it (reported once as evidence) or is older than every view we keep.

        Per (kind, sender) a slot remembers MAX_VOTE_VIEWS views, the newest: a
        validator sending votes for thousands of views at one height costs a
        bounded amount of memory, and honest replicas never need more (a height
        stuck across more view changes cannot complete in the oldest views).
        """
        key = (kind, view, sender)
        first = slot.first_votes.get(key)
        if first is None:
            views = slot.vote_views.setdefault((kind, sender), [])
            if len(views) >= MAX_VOTE_VIEWS:
                if view < views[0]:
                    return False
                self._forget_vote(slot, kind, views.pop(0), sender)
            bisect.insort(views, view)
            slot.first_votes[key] = msg.stripped() if isinstance(msg, PrePrepare) else msg
            return True
        if _digest_of(first) == digest:
            return True
        ekey = (kind, view, slot.height, sender)
        if ekey not in self._evidence_seen:
            self._evidence_seen[ekey] = None
            out.append(Evidence(sender, first, msg))
        return False

    def _forget_vote(self, slot: Slot, kind: str, view: int, sender: int) -> None:
        slot.first_votes.pop((kind, view, sender), None)
        self._evidence_seen.pop((kind, view, slot.height, sender), None)
        tallies = slot.prepares if kind == "prepare" else slot.commits if kind == "commit" else {}
        for key in [k for k in tallies if k[0] == view]:
            tallies[key].pop(sender, None)
            if not tallies[key]:
                del tallies[key]

    def _answer_straggler(self, peer: int, h: int, now: int, out: list[Action]) -> None:
        """A peer still votes for a height we delivered a pipeline ago: it missed
        the commits (Status cannot help when fewer than f+1 replicas are ahead,
        e.g. a cluster of exactly a quorum on lossy links). Send it our COMMIT
        for that height again: the identical message we sent when we prepared
        it. A vote for a height below our stable checkpoint gets the checkpoint.
        Late votes of the current pipeline are normal and get nothing."""
        if h + self.config.pipeline_window > self._delivered:
            return
        if h <= self._low:
            self._answer_checkpoint(peer, now, out)
            return
        slot = self._slots.get(h)
        cert = slot.prepared if slot is not None else None
        if slot is None or cert is None or slot.commit_view != cert.pre_prepare.view:
            return
        if self._may_answer("commit", peer, now, h):
            pp = cert.pre_prepare
            self._note_vote(slot, "commit", pp.view, pp.proposal.digest())
            out.append(Send(peer, self._sign(Commit(pp.view, h, pp.proposal.digest(), self.me))))

    def _payload_wanted(self, slot: Slot, digest: bytes) -> bool:
        """Only payloads of proposals someone honest may commit are kept."""
        if slot.accepted is not None and slot.accepted.proposal.digest() == digest:
            return True
        if slot.prepared is not None and slot.prepared.pre_prepare.proposal.digest() == digest:
            return True
        weak = self.config.weak_quorum
        return any(d == digest and len(v) >= weak for (_view, d), v in slot.commits.items())

    def _on_prepare(self, msg: Prepare, now: int, out: list[Action]) -> None:
        if msg.height <= self._delivered:
            self._answer_straggler(msg.sender, msg.height, now, out)
            return
        if not self._in_window(msg.height):
            self._outside_window(msg, msg.height)
            return
        if msg.sender == self.config.primary(msg.view):
            out.append(Rejected(msg.sender, "prepare-from-primary"))
            return
        slot = self._slot(msg.height)
        if not self._admit_vote(slot, "prepare", msg.view, msg.sender, msg, msg.digest, out):
            return
        if not self._view_gate(msg, msg.view, now, out):
            return
        self._tally_prepare(msg, now, out)

    def _tally_prepare(self, msg: Prepare, now: int, out: list[Action]) -> None:
        slot = self._slot(msg.height)
        slot.prepares.setdefault((msg.view, msg.digest), {})[msg.sender] = msg
        self._check_prepared(slot, now, out)

    def _check_prepared(self, slot: Slot, now: int, out: list[Action]) -> None:
        pp = slot.accepted
        if pp is None or slot.accepted_view != self._view or self._in_vc:
            return
        if slot.commit_view >= pp.view:
            return
        digest = pp.proposal.digest()
        votes = slot.prepares.get((pp.view, digest), {})
        if len(votes) < self.config.quorum - 1:
            return
        chosen = tuple(votes[s] for s in sorted(votes)[: self.config.quorum - 1])
        slot.prepared = PreparedCert(pp, chosen)
        slot.commit_view = pp.view
        self._persist_slot(slot, out)
        commit = self._sign(Commit(pp.view, pp.height, digest, self.me))
        self._note_vote(slot, "commit", pp.view, digest)
        out.append(Broadcast(commit))
        self._tally_commit(commit, now, out)

    def _on_commit(self, msg: Commit, now: int, out: list[Action]) -> None:
        h = msg.height
        if h <= self._delivered or h <= self._low:
            if msg.view < self._view:
                self._push_new_view(msg.sender, now, out)
            self._answer_straggler(msg.sender, h, now, out)
            return
        if not self._in_window(h):
            self._outside_window(msg, h)
            return
        slot = self._slot(h)
        if not self._admit_vote(slot, "commit", msg.view, msg.sender, msg, msg.digest, out):
            return
        if msg.view > self._view:
            self._note_higher_view(msg.sender, msg.view, now, out)
        elif msg.view < self._view:
            self._push_new_view(msg.sender, now, out)
        self._tally_commit(msg, now, out)

    def _tally_commit(self, msg: Commit, now: int, out: list[Action]) -> None:
        slot = self._slot(msg.height)
        votes = slot.commits.setdefault((msg.view, msg.digest), {})
        votes[msg.sender] = msg
        if len(votes) >= self.config.weak_quorum:  # one honest replica committed it
            self._max_commit_height = max(self._max_commit_height, msg.height)
        if slot.committed is None and len(votes) >= self.config.quorum:
            got = slot.payloads.get(msg.digest)
            if got is None:
                # committed elsewhere, but we never saw the payload: ask a voter
                # for it, and fetch the block if that does not help in time
                slot.payload_hints = tuple(sorted(votes))
                self._request_payload(slot, msg.digest, now, out)
                out.extend(self._need_sync(msg.height, tuple(sorted(votes)), now, urgent=False))
                return
            cert = tuple(votes[s] for s in sorted(votes)[: self.config.quorum])
            slot.committed = CommittedBlock(got[0], got[1], cert)
            self._try_deliver(now, out)
            if msg.height > self._delivered + 1 and self._gap_below(msg.height):
                # the others committed past heights we never saw: fetch them
                out.extend(self._need_sync(msg.height - 1, tuple(sorted(votes)), now, urgent=False))

    def _gap_below(self, h: int) -> bool:
        """Some height between the delivered one and ``h`` is one we saw nothing of."""
        for g in range(self._delivered + 1, h):
            s = self._slots.get(g)
            if s is None or (s.committed is None and s.accepted is None and not s.commits):
                return True
        return False

    def _try_deliver(self, now: int, out: list[Action]) -> None:
        # payloads may have arrived after a commit quorum
        while True:
            h = self._delivered + 1
            block = self._sync.blocks.pop(h, None)
            slot = self._slots.get(h)
            if block is None and slot is not None:
                if slot.committed is None:
                    self._complete_from_payloads(slot)
                block = slot.committed
            if block is None:
                return
            if slot is not None and slot.committed is None:
                slot.committed = block
            self._delivered = h
            self._delivered_ts = block.proposal.timestamp
            self._last_proposed = max(self._last_proposed, h)
            self._last_proposed_ts = max(self._last_proposed_ts, block.proposal.timestamp)
            self._timers.last_progress = now
            # votes are repeated only after a resend interval WITHOUT a delivery:
            # a node that is always busy is always "waiting", and repeating every
            # vote in flight each interval while blocks commit is pure load
            self._timers.retransmit_at = now + self._retransmit_interval()
            self._timers.backoff = 0
            for req in block.payload:
                rid = self._rules.request_id(req)
                self._requests.pending.pop(rid, None)
                if self._requests.unproposed.pop(rid, None) is not None:
                    self._requests.unproposed_bytes -= len(req)
                self._requests.recent_ids[rid] = h
            out.append(Deliver(block))

    def _complete_from_payloads(self, slot: Slot) -> None:
        for (_view, digest), votes in slot.commits.items():
            if len(votes) >= self.config.quorum and digest in slot.payloads:
                proposal, payload = slot.payloads[digest]
                cert = tuple(votes[s] for s in sorted(votes)[: self.config.quorum])
                slot.committed = CommittedBlock(proposal, payload, cert)
                return

    # ---------------------------------------------------------- checkpoints
    def _on_checkpoint(self, cp: Checkpoint, now: int, out: list[Action]) -> None:
        if cp.height % self.config.checkpoint_interval:
            out.append(Rejected(cp.sender, "checkpoint-height-not-interval"))
            return
        if cp.height <= self._low:
            return  # (a peer that missed the quorum says so in its Status)
        base = max(self._low, self._executed)
        if cp.height > base + 4 * self.config.watermark_window + self.config.checkpoint_interval:
            # far ahead: keep only a note that we may be behind
            self._note_ahead(cp, now, out)
            return
        self._add_checkpoint(cp, now, out)

    def _note_ahead(self, cp: Checkpoint, now: int, out: list[Action]) -> None:
        """Checkpoints far beyond our window: once f+1 validators are past a height,
        one of them honestly, sync to it. One entry per sender bounds the memory."""
        self._sync.ahead[cp.sender] = max(self._sync.ahead.get(cp.sender, 0), cp.height)
        if len(self._sync.ahead) >= self.config.weak_quorum:
            heights = sorted(self._sync.ahead.values(), reverse=True)
            target = heights[self.config.weak_quorum - 1]
            hints = tuple(sorted(s for s, h in self._sync.ahead.items() if h >= target))
            out.extend(self._need_sync(target, hints, now))

    def _answer_checkpoint(self, peer: int, now: int, out: list[Action]) -> None:
        own = self._ckpt.own.get(self._low)
        if own is not None and self._may_answer("checkpoint", peer, now):
            out.append(Send(peer, own))

    def _add_checkpoint(self, cp: Checkpoint, now: int, out: list[Action]) -> None:
        by_height = self._ckpt.votes.setdefault(cp.height, {})
        by_height[cp.sender] = cp
        matching = {s: c for s, c in by_height.items() if c.state_root == cp.state_root}
        if cp.height > self._executed:
            if len(matching) >= self.config.weak_quorum:
                hints = tuple(sorted(matching))
                out.extend(self._need_sync(cp.height, hints, now, urgent=False))
            return
        if len(matching) < self.config.quorum:
            return
        own = self._ckpt.own_roots.get(cp.height)
        if own is not None and own != cp.state_root:
            out.append(Divergence(cp.height, own, cp.state_root))
            return
        proof = tuple(matching[s] for s in sorted(matching)[: self.config.quorum])
        self._make_stable(cp.height, cp.state_root, proof, now, out)

    def _make_stable(
        self,
        h: int,
        root: bytes,
        proof: tuple[Checkpoint, ...],
        now: int,
        out: list[Action],
        *,
        replay: bool = True,
    ) -> None:
        if h <= self._low:
            return
        _invariant(
            h % self.config.checkpoint_interval == 0 and len(proof) >= self.config.quorum,
            "a stable checkpoint off a checkpoint height or without a quorum proof",
            h,
            len(proof),
        )
        self._low, self._stable_root, self._stable_proof = h, root, proof
        records: list[tuple[bytes, bytes | None]] = [
            (KEY_STABLE, canonical(StableRecord(h, root, proof)))
        ]
        for sh in sorted(self._slots):
            if sh <= h:
                del self._slots[sh]
                records.append((slot_key(sh), None))
        for ch in [c for c in self._ckpt.votes if c <= h]:
            del self._ckpt.votes[ch]
        for rh in [r for r in self._ckpt.own_roots if r < h]:
            del self._ckpt.own_roots[rh]
        for oh in [o for o in self._ckpt.own if o < h]:
            del self._ckpt.own[oh]
            records.append((checkpoint_key(oh), None))
        for ekey in [e for e in self._evidence_seen if e[2] <= h]:
            del self._evidence_seen[ekey]
        for akey in [
            a for a in self._limits.answered if a[0] in ("payload", "commit") and a[2] <= h
        ]:
            del self._limits.answered[akey]
        horizon = h - self.config.watermark_window
        if horizon > 0:
            for rid in [r for r, rh in self._requests.recent_ids.items() if rh <= horizon]:
                del self._requests.recent_ids[rid]
        out.append(Persist(tuple(records)))
        self._sync.ahead = {s: ah for s, ah in self._sync.ahead.items() if ah > h}
        if self._last_proposed < h:
            self._last_proposed = h
        if replay:
            self._replay_future(now, out)
            if self._is_primary_active():
                self._maybe_propose(now, out)

    # ----------------------------------------------------------- buffering
    def _buffer(self, msg: Message) -> None:
        """Keep ``msg`` for when its view or window comes, bounded per sender in
        count and bytes (an honest sender is at most a pipeline ahead)."""
        queue = self._future_buffer.queues.setdefault(msg.sender, [])
        weight = _weight(msg)
        used = self._future_buffer.weights.get(msg.sender, 0)
        limit = self._future_buffer.byte_limit
        if len(queue) < self.config.future_buffer_limit and used + weight <= limit:
            queue.append(msg)
            self._future_buffer.weights[msg.sender] = used + weight

    def _outside_window(self, msg: Message, h: int) -> None:
        """Above the window or the horizon: kept for later; above the epoch: never ours."""
        if self._low < h <= self._epoch_end:
            self._buffer(msg)

    def _replay_future(self, now: int, out: list[Action]) -> None:
        if not self._future_buffer.queues:
            return
        future, self._future_buffer.queues = self._future_buffer.queues, {}
        self._future_buffer.weights = {}
        for sender in sorted(future):
            for msg in future[sender]:
                _HANDLERS[type(msg)](self, msg, now, out)

    # --------------------------------------------------------- view change
    def _make_view_change(self, new_view: int) -> ViewChange:
        certs: list[PreparedCert] = []
        for h in sorted(self._slots):
            cert = self._slots[h].prepared
            if h > self._low and cert is not None:
                certs.append(cert.stripped())
        vc = ViewChange(
            new_view, self._low, self._stable_root, self._stable_proof, tuple(certs), self.me
        )
        return self._sign(vc)

    def _start_view_change(self, new_view: int, cause: str, now: int, out: list[Action]) -> None:
        if new_view <= self._view and self._in_vc:
            return
        _invariant(new_view > self._view, "a view change to a view not above ours", new_view)
        self._view = new_view
        self._in_vc = True
        self._timers.view_entered_at = now
        self._vc.quorum_at = NEVER
        self._persist_view(out)
        self._vc.own = self._make_view_change(new_view)
        self._vc.votes.setdefault(new_view, {})[self.me] = self._vc.own
        self._vc.resend_at = now + self.config.resend_interval_ms
        out.append(Broadcast(self._vc.own))
        out.append(ViewChanged(new_view, cause))
        for v in [v for v in self._vc.votes if v < new_view]:
            del self._vc.votes[v]
        self._after_view_change_vote(new_view, now, out)

    def _on_view_change(self, vc: ViewChange, now: int, out: list[Action]) -> None:
        if vc.new_view < self._view or (vc.new_view == self._view and not self._in_vc):
            if self._in_vc and vc.new_view > self._normal_view:
                self._answer_view_change(vc.sender, vc.new_view, now, out)
            else:
                self._push_new_view(vc.sender, now, out)
            return
        if vc.new_view > self._view + 4 * self.config.n + 64:
            out.append(Rejected(vc.sender, "view-change-too-far"))
            return
        try:
            self._check_view_change(vc)
        except CertificateError as exc:
            out.append(Rejected(vc.sender, f"bad-view-change: {exc}"))
            return
        self._record_view_change(vc)
        # join rule: f+1 others want views above ours
        above: dict[int, int] = {}  # sender -> lowest view above ours it asks for
        for v in sorted(self._vc.votes):
            if v > self._view:
                for s in self._vc.votes[v]:
                    if s != self.me:
                        above.setdefault(s, v)
        if len(above) >= self.config.weak_quorum:
            target = min(above.values())
            self._start_view_change(target, "joined f+1 view changes", now, out)
            return
        self._after_view_change_vote(vc.new_view, now, out)

    def _record_view_change(self, vc: ViewChange) -> None:
        """Keep per sender its VIEW-CHANGE for our view and its newest other one."""
        for v in [v for v in self._vc.votes if v not in (vc.new_view, self._view)]:
            if self._vc.votes[v].pop(vc.sender, None) is not None and not self._vc.votes[v]:
                del self._vc.votes[v]
        self._vc.votes.setdefault(vc.new_view, {})[vc.sender] = vc

    def _answer_view_change(self, peer: int, view: int, now: int, out: list[Action]) -> None:
        """A peer still collects VIEW-CHANGEs for ``view``, below the view we are
        changing to (it missed ours, and we escalated past it): send it ours.

        Safe: since we left ``_normal_view`` we prepared nothing (prepared
        certificates change only in a normal view), so a VIEW-CHANGE for any
        view above it tells the truth about every view below; and we never
        join a view below ours, so it commits us to nothing. Without this answer,
        n = 4 with one node down can wait forever: two replicas in view v with
        two of the three votes they need, the third alone in v+1 (see above).
        """
        if not self._may_answer("view_change", peer, now):
            return
        vc = self._vc.lower.get(view)
        if vc is None:
            vc = self._make_view_change(view)
            self._vc.lower[view] = vc
            while len(self._vc.lower) > LOWER_VIEW_CHANGES:
                del self._vc.lower[min(self._vc.lower)]
        out.append(Send(peer, vc))

    def _after_view_change_vote(self, view: int, now: int, out: list[Action]) -> None:
        if view != self._view or not self._in_vc:
            return
        votes = self._vc.votes.get(view, {})
        if len(votes) < self.config.quorum:
            return
        if self._vc.quorum_at == NEVER:
            self._vc.quorum_at = now
        if self.config.primary(view) == self.me and view not in self._vc.new_view_sent:
            chosen = pick_view_changes(votes, self.config.quorum)
            pps = self._new_view_pre_prepares(view, chosen, now)
            nv = self._sign(NewView(view, chosen, pps, self.me))
            self._vc.new_view_sent.add(view)
            self._enter_view(nv, now, out, own=True)

    def _check_view_change(self, vc: ViewChange) -> None:
        """Check every proof in ``vc`` (its own signature is checked by the caller;
        ``new_view.check_view_change``). A VIEW-CHANGE that passed once is not
        checked again."""
        key = hashlib.sha256(vc.signing_bytes(self._domain)).digest() + vc.sig
        if key in self._vc.checked:
            return
        check_view_change(self.config, self._verifier, self._rules, vc)
        self._vc.checked[key] = None
        if len(self._vc.checked) > CHECKED_VIEW_CHANGES:
            del self._vc.checked[next(iter(self._vc.checked))]

    def _new_view_pre_prepares(
        self, view: int, vcs: tuple[ViewChange, ...], now: int
    ) -> tuple[PrePrepare, ...]:
        """The new primary's re-proposals, signed: prepared values, empty blocks
        in the gaps (``new_view.reproposals``)."""
        pps = reproposals(
            view,
            select_prepared(vcs),
            chain_id=self._chain,
            proposer=self.me,
            empty_root=self._empty_root,
            prev_ts=self._delivered_ts,
            now=now,
        )
        return tuple(self._sign(pp) for pp in pps)

    def _on_new_view(self, nv: NewView, now: int, out: list[Action]) -> None:
        if nv.view < self._view or (nv.view == self._view and not self._in_vc):
            if nv.view < self._view:
                self._push_new_view(nv.sender, now, out)
            return
        try:
            self._check_new_view(nv, now)
        except CertificateError as exc:
            out.append(Rejected(nv.sender, f"bad-new-view: {exc}"))
            return
        self._enter_view(nv, now, out, own=False)

    def _check_new_view(self, nv: NewView, now: int) -> None:
        check_new_view(
            self.config,
            self._verifier,
            self._empty_root,
            nv,
            check_view_change=self._check_view_change,
            check_null_time=lambda pp: self._check_null_time(nv, pp, now),
        )

    def _check_null_time(self, nv: NewView, pp: PrePrepare, now: int) -> None:
        """An empty block's time is the new primary's choice: hold it to the rules
        of a fresh proposal (not ahead of our clock, after the block below)."""
        check_null_time(
            nv,
            pp,
            now=now,
            max_clock_drift_ms=self.config.max_clock_drift_ms,
            delivered=self._delivered,
            delivered_ts=self._delivered_ts,
        )

    def _enter_view(self, nv: NewView, now: int, out: list[Action], *, own: bool) -> None:
        view = nv.view
        _invariant(
            view > self._view or (view == self._view and self._in_vc),
            "entering a view below ours, or the one we are in",
            view,
            self._view,
        )
        self._view = view
        self._in_vc = False
        self._normal_view = view
        self._vc.lower.clear()
        self._timers.view_entered_at = now
        self._vc.quorum_at = NEVER
        self._vc.resend_at = NEVER
        self._vc.own = None
        self._vc.new_view = nv
        self._vc.higher_views.clear()
        for v in [v for v in self._vc.votes if v <= view]:
            del self._vc.votes[v]
        self._persist_view(out)
        out.append(ViewChanged(view, "new view"))
        # adopt the highest stable checkpoint of the quorum
        best = adopted_checkpoint(nv.view_changes)
        own_root = self._ckpt.own_roots.get(best.stable_height)
        if best.stable_height > self._low and own_root not in (None, best.stable_root):
            assert own_root is not None
            out.append(Divergence(best.stable_height, own_root, best.stable_root))
        elif best.stable_height > self._low:
            self._make_stable(
                best.stable_height, best.stable_root, best.checkpoint_proof, now, out, replay=False
            )
            if self._executed < best.stable_height:
                hints = tuple(
                    sorted(
                        vc.sender
                        for vc in nv.view_changes
                        if vc.stable_height == best.stable_height
                    )
                )
                out.extend(self._need_sync(best.stable_height, hints, now))
        # in-flight proposals of older views are void; prepared certificates stay
        self._requests.unproposed = dict(self._requests.pending)
        self._requests.unproposed_bytes = sum(len(r) for r, _ in self._requests.unproposed.values())
        self._last_proposed = max(self._delivered, self._low)
        for slot in self._slots.values():
            if slot.accepted_view < view:
                slot.accepted = None
        chosen = select_prepared(nv.view_changes).prepared
        for pp in nv.pre_prepares:
            h = pp.height
            if h <= self._low:
                continue
            slot = self._slot(h)
            digest = pp.proposal.digest()
            if not own and not self._admit_vote(slot, "pp", view, nv.sender, pp, digest, out):
                continue  # the primary proposed something else in this view too
            if slot.committed is not None and slot.committed.proposal.digest() != digest:
                out.append(Rejected(nv.sender, "new-view-conflicts-with-committed"))
                continue
            cert = chosen.get(h)
            if cert is not None:
                voters = (cert.pre_prepare.sender, *(p.sender for p in cert.prepares))
                slot.payload_hints = tuple(sorted(set(voters)))
            self._accept_pre_prepare(pp, now, out, own=own, send=False)
            if slot.accepted is not None and not self._is_full(slot.accepted):
                self._request_payload(slot, digest, now, out)
        if own:
            # only now: a primary that crashed before persisting its re-proposals
            # could otherwise propose something else at those heights after restart
            out.append(Broadcast(nv))
        self._last_proposed = max(self._last_proposed, self._low, self._delivered)
        self._replay_future(now, out)
        if self._is_primary_active():
            self._maybe_propose(now, out)

    # ----------------------------------------------------- learning the view
    def _note_higher_view(self, sender: int, view: int, now: int, out: list[Action]) -> None:
        if self._vc.higher_views.get(sender, -1) >= view:
            return
        self._vc.higher_views[sender] = view
        if len(self._vc.higher_views) < self.config.weak_quorum:
            return
        for peer in sorted(self._vc.higher_views):
            if now >= self._limits.last_request.get(peer, -NEVER) + self.config.resend_interval_ms:
                self._limits.last_request[peer] = now
                want = self._vc.higher_views[peer]
                out.append(Send(peer, self._sign(NewViewRequest(want, self.me))))

    def _on_new_view_request(self, req: NewViewRequest, now: int, out: list[Action]) -> None:
        self._push_new_view(req.sender, now, out)

    def _push_new_view(self, peer: int, now: int, out: list[Action]) -> None:
        nv = self._vc.new_view
        if nv is None or nv.view != self._view or self._in_vc or nv.sender == peer:
            return  # (its author would refuse its own message as from itself)
        if now < self._limits.last_push.get(peer, -NEVER) + self.config.resend_interval_ms:
            return
        self._limits.last_push[peer] = now
        out.append(Send(peer, nv))

    # ----------------------------------------------------------------- sync
    def _need_sync(
        self,
        target: int,
        hints: tuple[int, ...],
        now: int,
        *,
        force: bool = False,
        urgent: bool = True,
    ) -> list[Action]:
        """Ask the driver for certified blocks up to ``target``.

        Not urgent: we may only be a little slower than the others, so the
        request goes out one resend interval later if we are still behind.
        """
        if target <= self._delivered:
            return []
        if target <= self._sync.target and not force:
            return []
        if self._sync.target <= self._delivered:
            self._sync.since = now
        if not urgent and not force:
            if self._sync.target <= self._delivered:
                self._sync.asked_at = now
            self._sync.target = target
            self._sync.hints = tuple(h for h in hints if h != self.me)
            return []
        self._sync.target = max(self._sync.target, target)
        self._sync.asked_at = now
        if hints:
            self._sync.hints = tuple(h for h in hints if h != self.me)
        return [NeedSync(self._sync.target, self._sync.hints)]

    def _check_block(self, block: CommittedBlock) -> None:
        p = block.proposal
        if p.chain_id != self._chain:
            raise CertificateError("block of another chain")
        if self._rules.payload_root(block.payload) != p.payload_root:
            raise CertificateError("payload does not match the payload root")
        verify_commit_certificate(self.config, self._verifier, p, block.certificate)

    def _resend_votes(self, slot: Slot, now: int) -> list[Action]:
        """Repeat (identical) votes of the current view for an undelivered height,
        and ask for its payload if we still lack it."""
        out: list[Action] = []
        pp = slot.accepted
        if pp is None or slot.accepted_view != self._view or slot.height <= self._delivered:
            return out
        digest = pp.proposal.digest()
        if pp.sender == self.me:
            full = self._with_payload(slot, pp)
            if full is not None:
                self._note_vote(slot, "prepare", pp.view, digest)
                out.append(Broadcast(full))
        else:
            self._note_vote(slot, "prepare", pp.view, digest)
            out.append(Broadcast(self._sign(Prepare(pp.view, slot.height, digest, self.me))))
        if slot.commit_view == self._view:
            self._note_vote(slot, "commit", pp.view, digest)
            out.append(Broadcast(self._sign(Commit(pp.view, slot.height, digest, self.me))))
        if digest not in slot.payloads:
            self._request_payload(slot, digest, now, out)
        return out

    # ------------------------------------------------------------- payloads
    def _request_payload(self, slot: Slot, digest: bytes, now: int, out: list[Action]) -> None:
        """Ask f+1 replicas that voted for ``digest`` (one of them honest) for its
        payload, other ones on each retry, at most once per resend interval."""
        if digest in slot.payloads or now < slot.payload_asked_at + self.config.resend_interval_ms:
            return
        slot.payload_asked_at = now
        peers = [p for p in slot.payload_hints if p != self.me]
        if not peers:
            peers = [p for p in range(self.config.n) if p != self.me]
        k = min(self.config.weak_quorum, len(peers))
        start = slot.payload_tries * k
        slot.payload_tries += 1
        req = self._sign(PayloadRequest(slot.height, digest, self.me))
        for i in range(k):
            out.append(Send(peers[(start + i) % len(peers)], req))

    def _on_payload_request(self, req: PayloadRequest, now: int, out: list[Action]) -> None:
        slot = self._slots.get(req.height)
        if slot is None:
            return
        got = slot.payloads.get(req.digest)
        block = slot.committed
        if got is None and block is not None and block.proposal.digest() == req.digest:
            got = (block.proposal, block.payload)
        if got is not None and self._may_answer("payload", req.sender, now, req.height):
            out.append(Send(req.sender, self._sign(PayloadReply(got[0], got[1], self.me))))

    def _on_payload_reply(self, rep: PayloadReply, now: int, out: list[Action]) -> None:
        h = rep.height
        slot = self._slots.get(h)
        if slot is None or h <= self._delivered or not self._in_window(h):
            return
        digest = rep.proposal.digest()
        if digest in slot.payloads or not self._payload_wanted(slot, digest):
            return
        if (
            rep.proposal.chain_id != self._chain
            or len(rep.payload) > self.config.batch_max_count
            or sum(map(len, rep.payload)) > self.config.batch_max_bytes
            or self._rules.payload_root(rep.payload) != rep.proposal.payload_root
            or not self._rules.payload_valid(rep.payload)
        ):
            out.append(Rejected(rep.sender, "bad-payload-reply"))
            return
        slot.payloads[digest] = (rep.proposal, rep.payload)
        pp = slot.accepted
        if pp is not None and pp.proposal.digest() == digest and not self._is_full(pp):
            slot.accepted = pp.with_payload(rep.payload)
            self._forget_requests(rep.payload)
            self._persist_slot(slot, out)
        self._try_deliver(now, out)

    # --------------------------------------------------------------- status
    def _stalled(self, now: int) -> bool:
        """Something above our height is known, and nothing was delivered for a
        resend interval."""
        return self._waiting() and now >= self._timers.last_progress + self._retransmit_interval()

    def _on_status(self, st: Status, now: int, out: list[Action]) -> None:
        """A peer's heartbeat. Once f+1 peers (one of them honest) are past our
        height, fetch the blocks: consensus will not repeat them for us. A peer
        behind us gets our status (it syncs once f+1 told it), a peer whose
        stable checkpoint is behind ours our checkpoint, a peer in an older
        view the NEW-VIEW."""
        if st.height < 0 or st.low < 0:
            out.append(Rejected(st.sender, "malformed-status"))
            return
        self._sync.peer_heights[st.sender] = st.height
        if st.view > self._view:
            self._note_higher_view(st.sender, st.view, now, out)
        elif st.view < self._view:
            self._push_new_view(st.sender, now, out)
        if st.height < self._delivered and self._may_answer("status", st.sender, now):
            out.append(Send(st.sender, self._status()))
        if st.low < self._low:
            self._answer_checkpoint(st.sender, now, out)
        weak = self.config.weak_quorum
        ahead = sorted(self._sync.peer_heights.values(), reverse=True)
        if len(ahead) >= weak and ahead[weak - 1] > self._delivered:
            target = ahead[weak - 1]
            hints = tuple(sorted(p for p, h in self._sync.peer_heights.items() if h >= target))
            out.extend(self._need_sync(target, hints, now, urgent=False))
        elif (
            st.height > self._delivered
            and self._stalled(now)
            and self._may_answer("sync", st.sender, now)
        ):
            # fewer than f+1 ahead, but we are stuck: commits split over several
            # views (a cluster of exactly a quorum on lossy links) may never
            # complete here. Ask that one peer for certified blocks, a window at
            # most; a liar wastes one request per interval and moves no target.
            target = min(st.height, self._delivered + self.config.watermark_window)
            out.append(NeedSync(target, (st.sender,)))


_Handler = Callable[[Replica, Any, int, list[Action]], None]
_HANDLERS: dict[type, _Handler] = {
    PrePrepare: Replica._on_pre_prepare,
    Prepare: Replica._on_prepare,
    Commit: Replica._on_commit,
    Checkpoint: Replica._on_checkpoint,
    ViewChange: Replica._on_view_change,
    NewView: Replica._on_new_view,
    NewViewRequest: Replica._on_new_view_request,
    Status: Replica._on_status,
    PayloadRequest: Replica._on_payload_request,
    PayloadReply: Replica._on_payload_reply,
}
