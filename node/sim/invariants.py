"""Safety and liveness invariants, checked incrementally as the simulation runs.

- **agreement**: no two honest replicas commit different proposals (digests)
  at one height. One dict lookup per commit.
- **validity**: a committed block's proposal was pre-prepared by someone (every
  PrePrepare sent in the run is recorded), its payload matches the proposal's
  payload root and the payload rules, and its certificate holds a quorum of
  valid signatures of distinct validators over matching view, height and
  digest. Signature checks are cached per Commit object.
- **integrity**: an honest replica delivers heights strictly in order and never
  reports a state ``Divergence``.
- **liveness**: with at most f faulty nodes left once the last scheduled fault
  is over (time T), every honest node that is up commits at least one block in
  (T, T + bound]. Judged at the end of the run.
- **termination**: with ``stop_at_height`` > 0 and liveness owed, every honest
  node that is up at the end has reached ``stop_at_height``.
- **convergence**: in a quiescent run (the workload stops before the end) with
  liveness owed, every honest node that is up at the end stands at the
  highest committed height, reached by T' + bound where T' is the later of T
  and the last client submission.
- **requests**: with liveness owed, every transaction that reached an honest
  replica at time a is in a block some honest node committed by
  max(a, T) + bound. Only deadlines that passed before the run ended are
  judged. One dict operation per request arrival and per committed transaction.
- **vote_uniqueness**: no honest replica ever sends two PrePrepares, Prepares
  or Commits of one (view, height) with different digests, across crashes and
  restarts too. Recorded where the engine carries out the replica's sends,
  before any Byzantine twist or the network. One dict operation per vote.
- **evidence_honest**: no honest replica reports ``Evidence`` against an honest
  validator.
- **epochs**: in a run with validator changes, every change took effect (one
  epoch per change after genesis's) and every honest node that is up at the
  end stands in the last epoch.

In a run with validator changes the engine sets ``certifier``: for a height,
the signing domain, quorum and verifier of the set that certifies it (as the
first commits of the run determined it), so validity holds every block to its
own epoch's set.

Each verdict keeps its violation count and the detail of the first one; a
verdict that does not apply to the run says why in its ``note``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Verifier
from consensus.messages import Commit, CommittedBlock, Message, NewView, Prepare, PrePrepare

INVARIANTS = (
    "agreement",
    "validity",
    "integrity",
    "liveness",
    "termination",
    "convergence",
    "requests",
    "vote_uniqueness",
    "evidence_honest",
    "epochs",
)
NOT_OWED = "not applicable: more than f nodes stay faulty or a partition or drop lasts"
# the value of ``requests`` for a transaction an honest node has committed
_COMMITTED = -1


@dataclass
class Verdict:
    violations: int = 0
    first: dict[str, Any] | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.violations == 0

    def fail(self, **detail: Any) -> None:
        self.violations += 1
        if self.first is None:
            self.first = detail

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": self.ok, "violations": self.violations, "first": self.first}
        if self.note:
            out["note"] = self.note
        return out


class InvariantChecker:
    def __init__(
        self,
        config: ConsensusConfig,
        verifier: Verifier,
        rules: PayloadRules,
        *,
        liveness_after: int = 0,
        liveness_bound: int = 0,
        liveness_nodes: Iterable[int] = (),
        liveness_applicable: bool = True,
        honest: Iterable[int] | None = None,
        stop_at_height: int = 0,
        quiescent: bool = False,
    ) -> None:
        self.chain_id = config.chain_id
        self.quorum = config.quorum
        self.verifier = verifier
        self.rules = rules
        self.verdicts = {name: Verdict() for name in INVARIANTS}
        self.proposals: set[bytes] = set()
        # height -> (digest, first honest node that committed it)
        self.committed: dict[int, tuple[bytes, int]] = {}
        self._sig_ok: dict[Commit, bool] = {}
        self._payload_ok: set[tuple[bytes, tuple[bytes, ...]]] = set()
        self.liveness_after = liveness_after
        self.liveness_bound = liveness_bound
        self.liveness_nodes = sorted(liveness_nodes)
        self.liveness_applicable = liveness_applicable
        self.first_commit_after: dict[int, int] = {}
        # membership only (never iterated): who counts as honest
        self.honest = frozenset(range(config.n) if honest is None else honest)
        self.stop_at_height = stop_at_height
        self.quiescent = quiescent
        # honest node -> virtual time of its latest commit
        self.last_commit: dict[int, int] = {}
        # (sender, kind, view, height) -> digest of the vote an honest replica sent
        self.votes: dict[tuple[int, str, int, int], bytes] = {}
        # transaction -> first arrival at an honest replica, or _COMMITTED
        self.requests: dict[bytes, int] = {}
        # virtual time of the last client submission, and whether the workload
        # is over (the engine sets both)
        self.last_submit = 0
        self.workload_done = False
        # height -> (signing domain, quorum, verifier) of its set (None: genesis's)
        self.certifier: Callable[[int], tuple[str, int, Verifier]] | None = None

    # -- observations --------------------------------------------------------

    def record_pre_prepare(self, pp: PrePrepare) -> None:
        self.proposals.add(pp.proposal.digest())

    def on_honest_send(self, node: int, msg: Message, now: int, me: int | None = None) -> None:
        """Honest ``node`` sends ``msg`` (once per Send/Broadcast action): record
        proposals for validity and its own votes for vote_uniqueness. ``me``: its
        index in the message's epoch (default: the node id)."""
        me = node if me is None else me
        if isinstance(msg, Prepare):
            if msg.sender == me:
                self._vote(node, "prepare", msg.view, msg.height, msg.digest, now)
        elif isinstance(msg, Commit):
            if msg.sender == me:
                self._vote(node, "commit", msg.view, msg.height, msg.digest, now)
        elif isinstance(msg, PrePrepare):
            self._own_pre_prepare(node, me, msg, now)
        elif isinstance(msg, NewView):
            for pp in msg.pre_prepares:
                self._own_pre_prepare(node, me, pp, now)

    def _own_pre_prepare(self, node: int, me: int, pp: PrePrepare, now: int) -> None:
        digest = pp.proposal.digest()
        self.proposals.add(digest)
        if pp.sender == me:
            self._vote(node, "pre_prepare", pp.view, pp.proposal.height, digest, now)

    def _vote(self, node: int, kind: str, view: int, height: int, digest: bytes, now: int) -> None:
        prev = self.votes.setdefault((node, kind, view, height), digest)
        if prev != digest:
            self.verdicts["vote_uniqueness"].fail(
                node=node,
                kind=kind,
                view=view,
                height=height,
                digest_a=prev.hex(),
                digest_b=digest.hex(),
                time_ms=now,
            )

    def on_evidence(self, reporter: int, validator: int, now: int) -> None:
        if validator in self.honest:
            self.verdicts["evidence_honest"].fail(
                reporter=reporter, validator=validator, time_ms=now
            )

    def on_request(self, tx: bytes, now: int) -> None:
        """A client transaction reached an honest replica."""
        self.requests.setdefault(tx, now)

    def request_deadline(self, arrived: int) -> int:
        return max(arrived, self.liveness_after) + self.liveness_bound

    def convergence_deadline(self) -> int:
        return max(self.last_submit, self.liveness_after) + self.liveness_bound

    def on_commit(self, node: int, block: CommittedBlock, digest: bytes, now: int) -> bool:
        """An honest node committed ``block``; True when it is the first at its height."""
        if now > self.liveness_after and node not in self.first_commit_after:
            self.first_commit_after[node] = now
        self.last_commit[node] = now
        height = block.proposal.height
        self._check_validity(node, block, digest, now)
        prev = self.committed.get(height)
        if prev is None:
            self.committed[height] = (digest, node)
            self._requests_committed(block.payload, now)
            return True
        if prev[0] != digest:
            self.verdicts["agreement"].fail(
                height=height,
                time_ms=now,
                node_a=prev[1],
                digest_a=prev[0].hex(),
                node_b=node,
                digest_b=digest.hex(),
            )
        return False

    def on_out_of_order(self, node: int, expected: int, got: int, now: int) -> None:
        self.verdicts["integrity"].fail(
            kind="out_of_order", node=node, expected_height=expected, height=got, time_ms=now
        )

    def on_divergence(self, node: int, height: int, ours: bytes, stable: bytes, now: int) -> None:
        self.verdicts["integrity"].fail(
            kind="divergence",
            node=node,
            height=height,
            ours=ours.hex(),
            stable=stable.hex(),
            time_ms=now,
        )

    # -- validity ------------------------------------------------------------

    def _check_validity(self, node: int, block: CommittedBlock, digest: bytes, now: int) -> None:
        verdict = self.verdicts["validity"]
        p = block.proposal
        where = {"node": node, "height": p.height, "digest": digest.hex(), "time_ms": now}
        if digest not in self.proposals:
            verdict.fail(reason="never pre-prepared", **where)
        key = (digest, block.payload)
        if key not in self._payload_ok:
            if self.rules.payload_root(block.payload) != p.payload_root:
                verdict.fail(reason="payload does not match payload_root", **where)
            elif not self.rules.payload_valid(block.payload):
                verdict.fail(reason="payload breaks the payload rules", **where)
            else:
                self._payload_ok.add(key)
        domain, quorum, verifier = self.chain_id, self.quorum, self.verifier
        if self.certifier is not None:
            domain, quorum, verifier = self.certifier(p.height)
        best = self._certified_votes(block.certificate, p.height, digest, domain, verifier)
        if best < quorum:
            verdict.fail(
                reason=f"certificate has {best} valid matching votes, quorum is {quorum}",
                **where,
            )

    def _certified_votes(
        self,
        cert: tuple[Commit, ...],
        height: int,
        digest: bytes,
        domain: str,
        verifier: Verifier,
    ) -> int:
        """Most valid signatures of distinct validators over one (view, height, digest)."""
        senders: dict[int, set[int]] = {}
        cache = self._sig_ok
        for c in cert:
            if c.height != height or c.digest != digest:
                continue
            ok = cache.get(c)
            if ok is None:
                ok = verifier.verify(c.sender, c.signing_bytes(domain), c.sig)
                cache[c] = ok
            if ok:
                senders.setdefault(c.view, set()).add(c.sender)
        return max((len(s) for s in senders.values()), default=0)

    # -- liveness ------------------------------------------------------------

    def _requests_committed(self, payload: tuple[bytes, ...], now: int) -> None:
        requests = self.requests
        for tx in payload:
            arrived = requests.get(tx, _COMMITTED)
            requests[tx] = _COMMITTED
            if arrived == _COMMITTED or not self.liveness_applicable:
                continue
            deadline = self.request_deadline(arrived)
            if now > deadline:
                self.verdicts["requests"].fail(
                    tx=_tx_label(tx), arrived_ms=arrived, deadline_ms=deadline, committed_ms=now
                )

    def liveness_satisfied(self) -> bool:
        got = self.first_commit_after
        return self._idle_after_faults() or all(i in got for i in self.liveness_nodes)

    def _idle_after_faults(self) -> bool:
        """A quiescent run whose last transaction came before the last fault ended:
        nothing is left to commit after it, so convergence (not liveness) judges it."""
        return self.quiescent and self.workload_done and self.last_submit <= self.liveness_after

    def finish(
        self, end: int = 0, up_heights: Mapping[int, int] | None = None, workload_done: bool = True
    ) -> None:
        """Judge what is judged at the end: liveness, termination, convergence and
        the requests still pending. ``up_heights``: height of every honest node
        that is up at the end (None: termination and convergence not judged)."""
        self.workload_done = workload_done
        self._finish_liveness()
        if up_heights is not None:
            self._finish_termination(end, up_heights)
            self._finish_convergence(end, up_heights, workload_done)
        self._finish_requests(end)

    def _finish_termination(self, end: int, up: Mapping[int, int]) -> None:
        verdict = self.verdicts["termination"]
        if not self.stop_at_height:
            verdict.note = "not judged: stop_at_height is 0"
            return
        if not self.liveness_applicable:
            verdict.note = NOT_OWED
            return
        for i in sorted(up):
            if up[i] < self.stop_at_height:
                verdict.fail(node=i, height=up[i], stop_at_height=self.stop_at_height, end_ms=end)

    def _finish_convergence(self, end: int, up: Mapping[int, int], workload_done: bool) -> None:
        verdict = self.verdicts["convergence"]
        if not self.quiescent:
            verdict.note = "not judged: the workload runs to the end"
            return
        if not self.liveness_applicable:
            verdict.note = NOT_OWED
            return
        deadline = self.convergence_deadline()
        if not workload_done or end < deadline:
            verdict.note = f"not judged: the run ended at {end} ms, before the deadline"
            return
        target = max(self.committed, default=0)
        for i in sorted(up):
            reached = self.last_commit.get(i, 0)
            if up[i] != target or reached > deadline:
                verdict.fail(
                    node=i,
                    height=up[i],
                    target_height=target,
                    reached_ms=reached,
                    deadline_ms=deadline,
                )

    def _finish_requests(self, end: int) -> None:
        verdict = self.verdicts["requests"]
        if not self.liveness_applicable:
            verdict.note = NOT_OWED
            return
        for tx, arrived in self.requests.items():
            if arrived == _COMMITTED:
                continue
            deadline = self.request_deadline(arrived)
            if deadline <= end:
                verdict.fail(
                    tx=_tx_label(tx), arrived_ms=arrived, deadline_ms=deadline, committed_ms=None
                )

    def _finish_liveness(self) -> None:
        verdict = self.verdicts["liveness"]
        if not self.liveness_applicable:
            verdict.note = NOT_OWED
            return
        if self._idle_after_faults():
            verdict.note = "not judged: no transactions after the last fault (see convergence)"
            return
        deadline = self.liveness_after + self.liveness_bound
        for i in self.liveness_nodes:
            at = self.first_commit_after.get(i)
            if at is None or at > deadline:
                verdict.fail(
                    node=i,
                    after_ms=self.liveness_after,
                    deadline_ms=deadline,
                    first_commit_ms=at,
                )

    def finish_epochs(self, want: int, made: int, node_epochs: Mapping[int, int]) -> None:
        """``want`` epochs should exist (genesis's and one per change), ``made`` do;
        ``node_epochs``: the epoch of every honest node up at the end."""
        verdict = self.verdicts["epochs"]
        if want <= 1:
            verdict.note = "not judged: no validator change"
            return
        if made != want:
            verdict.fail(epochs=made, expected=want)
        for node in sorted(node_epochs):
            if node_epochs[node] != want - 1:
                verdict.fail(node=node, epoch=node_epochs[node], expected=want - 1)

    def all_ok(self) -> bool:
        return all(v.ok for v in self.verdicts.values())


def _tx_label(tx: bytes) -> str:
    """The readable head of a transaction (``tx:<seq>:`` for the simulator's)."""
    return tx[:24].rstrip(b".").decode("ascii", "backslashreplace")
