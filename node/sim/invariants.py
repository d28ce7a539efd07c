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

Each verdict keeps its violation count and the detail of the first one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Verifier
from consensus.messages import Commit, CommittedBlock, PrePrepare

INVARIANTS = ("agreement", "validity", "integrity", "liveness")


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

    # -- observations --------------------------------------------------------

    def record_pre_prepare(self, pp: PrePrepare) -> None:
        self.proposals.add(pp.proposal.digest())

    def on_commit(self, node: int, block: CommittedBlock, digest: bytes, now: int) -> bool:
        """An honest node committed ``block``; True when it is the first at its height."""
        if now > self.liveness_after and node not in self.first_commit_after:
            self.first_commit_after[node] = now
        height = block.proposal.height
        self._check_validity(node, block, digest, now)
        prev = self.committed.get(height)
        if prev is None:
            self.committed[height] = (digest, node)
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
        best = self._certified_votes(block.certificate, p.height, digest)
        if best < self.quorum:
            verdict.fail(
                reason=f"certificate has {best} valid matching votes, quorum is {self.quorum}",
                **where,
            )

    def _certified_votes(self, cert: tuple[Commit, ...], height: int, digest: bytes) -> int:
        """Most valid signatures of distinct validators over one (view, height, digest)."""
        senders: dict[int, set[int]] = {}
        cache = self._sig_ok
        for c in cert:
            if c.height != height or c.digest != digest:
                continue
            ok = cache.get(c)
            if ok is None:
                ok = self.verifier.verify(c.sender, c.signing_bytes(self.chain_id), c.sig)
                cache[c] = ok
            if ok:
                senders.setdefault(c.view, set()).add(c.sender)
        return max((len(s) for s in senders.values()), default=0)

    # -- liveness ------------------------------------------------------------

    def liveness_satisfied(self) -> bool:
        got = self.first_commit_after
        return all(i in got for i in self.liveness_nodes)

    def finish(self) -> None:
        """Judge liveness once the run is over."""
        verdict = self.verdicts["liveness"]
        if not self.liveness_applicable:
            verdict.note = "not applicable: more than f nodes stay faulty or a partition lasts"
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

    def all_ok(self) -> bool:
        return all(v.ok for v in self.verdicts.values())
