"""The checker of a chaos run: pure functions from what was recorded to violations.

Inputs: the history (``tests/chaos/history.py``), each node's chain as dumped
at the end of the run (``ChainBlock`` per height from 1, e.g. from
``GET /v1/blocks/{h}`` through ``ChainBlock.from_api``), optionally per-node
resource samples. Output: a list of ``Violation(rule, message)``, empty for a
correct run. Only *honest* nodes count: a Byzantine node's chain and answers are
ignored (``honest``, default: every node with a chain dump).

The rules (``RULES``):

``chain-shape``
    each dump is heights 1, 2, ... and each block's ``parent_hash`` is the hash
    of the block before (block 1: the genesis parent, 64 zeros).
``same-location``
    a tx an honest node reported committed (or rejected: also in a block) at
    height h, index i is at h, i on every honest node whose chain reaches h. A
    node behind is fine, a different tx there is not.
``double-commit``
    no tx is twice in an honest chain, and honest nodes never reported one tx at
    two places. A second copy in a block a *Byzantine* proposer made is allowed
    (it executes as a ``replay`` rejection, and the tx's place stays the first:
    nothing an honest backup can refuse without the state); ``honest`` says who
    is Byzantine, so with no ``honest`` every copy counts.
``divergence``
    honest chains agree (hash, parent, state root, tx list) at every height
    both have; reported once per node, at its first divergent height.
``certificate``
    each honest block's commit certificate is a quorum (``ConsensusConfig``'s,
    ceil((n+f+1)/2)) of distinct validators of 0..n-1, all in one view, the
    header's. Certificates themselves may differ between honest nodes:
    ``docs/blocks.md`` explains why a node may hold a quorum of another view
    or of other validators for the same block; that is not a violation.
    Signatures are checked only with a ``verify`` callback (the integration
    can build one on ``consensus.quorum.verify_commit_certificate``).
``monotonic-read``
    per node, in real time: once a status read of a tx *completed* with the tx
    in a block, every read of that tx on that node *invoked* later says the
    same status at the same place; and that node's final chain still has it
    (a shorter chain is a rollback). Nodes differ legitimately: a node behind
    answers ``pending`` for what another already committed.
``recovery``
    every fault window healed, and within ``bound`` seconds of the last heal
    a status read saw a tx in a block *above* every height seen before that
    heal: the network commits again. A read's completion time stands for the
    commit time (an upper bound: keep the readers polling).
``resources``
    per node process (a restart starts a new one), RSS and open file
    descriptors grow by at most the bounds between the start and the end of
    the run (medians of the first and last quarter of the samples).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus.config import ConsensusConfig
from node.core.block import GENESIS_PARENT_HASH
from tests.chaos.history import FaultSpan, Op, completions, fault_spans

RULES = (
    "chain-shape",
    "same-location",
    "double-commit",
    "divergence",
    "certificate",
    "monotonic-read",
    "recovery",
    "resources",
)
Chains = Mapping[int, Sequence["ChainBlock"]]  # node -> its blocks from height 1
Verify = Callable[[int, "ChainBlock"], str | None]  # (node, block) -> what is wrong, or None


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass(frozen=True)
class ChainBlock:
    """What the checker needs of one block of one node's chain."""

    height: int
    hash: str
    parent_hash: str
    state_root: str
    tx_hashes: tuple[str, ...]
    view: int  # the header's view: the view of this node's certificate
    signers: tuple[int, ...]  # validator of each certificate entry, in order
    cert_views: tuple[int, ...]  # view of each certificate entry
    cert_digest: str  # SHA-256 of the certificate's canonical JSON (for reports)
    proposer: int = -1  # the header's proposer (validator index); -1: not known

    @classmethod
    def from_api(cls, block: Mapping[str, Any]) -> ChainBlock:
        """From the JSON of ``GET /v1/blocks/{height}`` (``docs/blocks.md``)."""
        header = block["header"]
        cert = list(block["certificate"])
        canonical = json.dumps(cert, sort_keys=True, separators=(",", ":")).encode()
        return cls(
            height=int(header["height"]),
            hash=str(block["hash"]),
            parent_hash=str(header["parent_hash"]),
            state_root=str(header["state_root"]),
            tx_hashes=tuple(str(h) for h in block["tx_hashes"]),
            view=int(header["view"]),
            signers=tuple(int(c["validator"]) for c in cert),
            cert_views=tuple(int(c["view"]) for c in cert),
            cert_digest=hashlib.sha256(canonical).hexdigest(),
            proposer=int(header["proposer"]),
        )


@dataclass(frozen=True)
class ResourceSample:
    """One reading of a node process's resources."""

    node: int
    pid: int
    mono_ns: int
    rss_bytes: int
    fds: int


def read_process_resources(pid: int) -> tuple[int, int]:
    """(RSS in bytes, open file descriptors) of a live process, from /proc (Linux)."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
            break
    return rss_kib * 1024, len(os.listdir(f"/proc/{pid}/fd"))


def _short(h: str) -> str:
    return h[:12]


def _honest(chains: Chains, honest: Collection[int] | None) -> list[int]:
    return sorted(chains.keys() if honest is None else honest)


def _reports(history: Iterable[Op], honest: Collection[int]) -> list[Op]:
    """Status reads by honest nodes that found the tx in a block, in history order."""
    return [op for op in history if op.in_chain and op.node in honest]


# ---------------------------------------------------------------- rules
def check_chain_shape(chains: Chains, honest: Collection[int] | None = None) -> list[Violation]:
    out = []
    for node in _honest(chains, honest):
        parent = GENESIS_PARENT_HASH
        for k, block in enumerate(chains.get(node, ()), 1):
            if block.height != k:
                out.append(
                    Violation("chain-shape", f"node {node}: block #{k} has height {block.height}")
                )
                break
            if block.parent_hash != parent:
                out.append(
                    Violation(
                        "chain-shape",
                        f"node {node}: block {k} names parent {_short(block.parent_hash)}, "
                        f"the block before is {_short(parent)}",
                    )
                )
                break
            parent = block.hash
    return out


def check_same_location(
    history: Sequence[Op], chains: Chains, honest: Collection[int] | None = None
) -> list[Violation]:
    nodes = _honest(chains, honest)
    out = []
    seen: set[tuple[str, int, int]] = set()
    for op in _reports(history, nodes):
        assert op.tx is not None and op.height is not None and op.index is not None
        where = (op.tx, op.height, op.index)
        if where in seen:
            continue
        seen.add(where)
        wrong = []
        for y in nodes:
            blocks = chains.get(y, ())
            if len(blocks) < op.height:
                continue  # behind (or no dump): fine
            txs = blocks[op.height - 1].tx_hashes
            if op.index >= len(txs):
                wrong.append(f"node {y}: only {len(txs)} txs")
            elif txs[op.index] != op.tx:
                wrong.append(f"node {y}: tx {_short(txs[op.index])}")
        if wrong:
            out.append(
                Violation(
                    "same-location",
                    f"tx {_short(op.tx)} reported committed at height {op.height} index "
                    f"{op.index} by node {op.node} (client {op.client} op {op.op}), but there "
                    + "; ".join(wrong),
                )
            )
    return out


def check_double_commit(
    history: Sequence[Op], chains: Chains, honest: Collection[int] | None = None
) -> list[Violation]:
    nodes = _honest(chains, honest)
    out = []
    # in the chains: group the nodes by (tx, its places) so a shared chain reports once
    twice: dict[tuple[str, tuple[tuple[int, int], ...]], list[int]] = defaultdict(list)
    for y in nodes:
        places: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for block in chains.get(y, ()):
            for i, tx in enumerate(block.tx_hashes):
                if places[tx] and honest is not None and block.proposer not in honest:
                    continue  # a later copy a Byzantine proposer made
                places[tx].append((block.height, i))
        for tx, where in places.items():
            if len(where) > 1:
                twice[(tx, tuple(where))].append(y)
    for (tx, places_at), ys in sorted(twice.items()):
        at = " and ".join(f"height {h} index {i}" for h, i in places_at)
        out.append(
            Violation(
                "double-commit", f"tx {_short(tx)} is in the chain twice, at {at}, on nodes {ys}"
            )
        )
    # in the answers
    reported: dict[str, dict[tuple[int, int], int]] = defaultdict(dict)
    for op in _reports(history, nodes):
        assert op.tx is not None and op.height is not None and op.index is not None
        reported[op.tx].setdefault((op.height, op.index), op.node or 0)
    for tx, places_by in reported.items():
        if len(places_by) > 1:
            at = ", ".join(f"height {h} index {i} (node {y})" for (h, i), y in places_by.items())
            out.append(
                Violation("double-commit", f"tx {_short(tx)} was reported committed at {at}")
            )
    return out


def _key(block: ChainBlock) -> tuple[str, str, str, tuple[str, ...]]:
    return (block.hash, block.parent_hash, block.state_root, block.tx_hashes)


def check_divergence(chains: Chains, honest: Collection[int] | None = None) -> list[Violation]:
    nodes = [y for y in _honest(chains, honest) if y in chains]
    out = []
    diverged: set[int] = set()
    top = max((len(chains[y]) for y in nodes), default=0)
    for h in range(1, top + 1):
        have = [y for y in nodes if len(chains[y]) >= h and y not in diverged]
        if not have:
            continue
        ref = have[0]
        a = chains[ref][h - 1]
        for y in have[1:]:
            b = chains[y][h - 1]
            if _key(a) == _key(b):
                continue
            diverged.add(y)
            fields = [
                f"{name} {_short(str(x))} != {_short(str(z))}"
                for name, x, z in (
                    ("hash", a.hash, b.hash),
                    ("parent", a.parent_hash, b.parent_hash),
                    ("state root", a.state_root, b.state_root),
                )
                if x != z
            ]
            if a.tx_hashes != b.tx_hashes:
                fields.append(f"txs {len(a.tx_hashes)} != {len(b.tx_hashes)} or reordered")
            out.append(
                Violation(
                    "divergence",
                    f"node {y} diverges from node {ref} at height {h}: " + ", ".join(fields),
                )
            )
    return out


def quorum(n: int) -> int:
    """The commit quorum of ``n`` validators, as the replica computes it."""
    return ConsensusConfig(chain_id="chaos-checker", n=n).quorum


def check_certificates(
    chains: Chains,
    n: int | Callable[[int], int],
    honest: Collection[int] | None = None,
    verify: Verify | None = None,
) -> list[Violation]:
    """``n``: the validator count, or a function of the height (a chain whose set
    changes: the size of the epoch that certifies each height)."""
    out = []
    for y in _honest(chains, honest):
        for block in chains.get(y, ()):
            n_here = n(block.height) if callable(n) else n
            need = quorum(n_here)
            where = f"node {y} height {block.height}"
            signers = set(block.signers)
            problems = []
            if len(signers) != len(block.signers):
                problems.append(f"a validator signs twice in {list(block.signers)}")
            if bad := sorted(v for v in signers if not 0 <= v < n_here):
                problems.append(f"validators {bad} are not in 0..{n_here - 1}")
            if len(signers) < need:
                problems.append(f"{len(signers)} distinct signers, {need} needed")
            if set(block.cert_views) != {block.view}:
                problems.append(
                    f"certificate views {sorted(set(block.cert_views))}, header view {block.view}"
                )
            if not problems and verify is not None and (why := verify(y, block)) is not None:
                problems.append(why)
            if problems:
                out.append(Violation("certificate", f"{where}: " + "; ".join(problems)))
    return out


def check_monotonic_reads(
    history: Sequence[Op], chains: Chains, honest: Collection[int] | None = None
) -> list[Violation]:
    nodes = set(_honest(chains, honest))
    out = []
    # per (node, tx): the earliest completed in-chain read, then every read invoked after it
    first: dict[tuple[int, str], Op] = {}
    reads = [
        (inv, done)
        for inv, done in completions(history)
        if inv.f == "status" and done is not None and done.type == "ok" and inv.node in nodes
    ]
    for _inv, done in sorted(reads, key=lambda p: p[1].mono_ns):
        assert done.node is not None and done.tx is not None
        key = (done.node, done.tx)
        if done.in_chain and key not in first:
            first[key] = done
    for inv, done in reads:
        assert inv.node is not None and inv.tx is not None
        seen = first.get((inv.node, inv.tx))
        if seen is None or done is seen or inv.mono_ns <= seen.mono_ns:
            continue
        if (done.status, done.height, done.index) != (seen.status, seen.height, seen.index):
            now = (
                done.status if not done.in_chain else f"{done.status} at {done.height}/{done.index}"
            )
            out.append(
                Violation(
                    "monotonic-read",
                    f"node {inv.node}: tx {_short(inv.tx)} read {seen.status} at height "
                    f"{seen.height} index {seen.index} (client {seen.client} op {seen.op}), "
                    f"later {now} (client {inv.client} op {inv.op})",
                )
            )
    for (y, tx), seen in sorted(first.items()):
        assert seen.height is not None
        if y in chains and len(chains[y]) < seen.height:
            out.append(
                Violation(
                    "monotonic-read",
                    f"node {y}: tx {_short(tx)} read committed at height {seen.height}, but its "
                    f"final chain ends at height {len(chains[y])}",
                )
            )
    return out


def check_recovery(
    history: Sequence[Op],
    bound_s: float,
    spans: Sequence[FaultSpan] | None = None,
    honest: Collection[int] | None = None,
) -> list[Violation]:
    windows = fault_spans(history) if spans is None else list(spans)
    if not windows:
        return []
    t0 = min((op.mono_ns for op in history), default=0)

    def rel(ns: int) -> str:
        return f"{(ns - t0) / 1e9:.1f}s"

    open_ = [w for w in windows if w.end_ns is None]
    if open_:
        return [
            Violation("recovery", f"fault '{w.fault}' (from {rel(w.start_ns)}) never healed")
            for w in open_
        ]
    healed = max(w.end_ns for w in windows if w.end_ns is not None)
    reads = [op for op in history if op.in_chain and (honest is None or op.node in honest)]
    before = max((op.height or 0 for op in reads if op.mono_ns <= healed), default=0)
    after = [op for op in reads if op.mono_ns > healed and (op.height or 0) > before]
    first = min((op.mono_ns for op in after), default=None)
    if first is not None and first - healed <= bound_s * 1e9:
        return []
    if first is None:
        end = max(op.mono_ns for op in history)
        seen = f"none in the {(end - healed) / 1e9:.1f}s the history goes on"
    else:
        seen = f"the first {(first - healed) / 1e9:.1f}s after"
    return [
        Violation(
            "recovery",
            f"no block above height {before} committed within {bound_s:g}s of the last heal "
            f"(at {rel(healed)}): {seen}",
        )
    ]


def check_resources(
    samples: Iterable[ResourceSample], max_rss_growth_bytes: int, max_fd_growth: int
) -> list[Violation]:
    runs: dict[tuple[int, int], list[ResourceSample]] = defaultdict(list)
    for s in samples:
        runs[(s.node, s.pid)].append(s)
    out = []
    for (node, pid), run in sorted(runs.items()):
        run.sort(key=lambda s: s.mono_ns)
        if len(run) < 2:
            continue
        q = max(1, len(run) // 4)
        span = (run[-1].mono_ns - run[0].mono_ns) / 1e9
        series = (
            ("RSS", [s.rss_bytes for s in run], max_rss_growth_bytes, "MiB", 1 << 20),
            ("open fds", [s.fds for s in run], max_fd_growth, "", 1),
        )
        for what, values, bound, unit, scale in series:
            start = statistics.median(values[:q])
            end = statistics.median(values[-q:])
            if end - start > bound:
                out.append(
                    Violation(
                        "resources",
                        f"node {node} (pid {pid}): {what} grew by {(end - start) / scale:g}{unit} "
                        f"({start / scale:g} -> {end / scale:g}) over {span:.0f}s, "
                        f"bound {bound / scale:g}{unit}",
                    )
                )
    return out


def check_all(
    history: Sequence[Op],
    chains: Chains,
    *,
    n: int | Callable[[int], int],
    honest: Collection[int] | None = None,
    recovery_bound_s: float | None = None,
    samples: Iterable[ResourceSample] = (),
    max_rss_growth_bytes: int = 256 << 20,
    max_fd_growth: int = 64,
    verify: Verify | None = None,
) -> list[Violation]:
    """Every rule (module docstring); ``recovery`` only with a bound."""
    out = check_chain_shape(chains, honest)
    out += check_same_location(history, chains, honest)
    out += check_double_commit(history, chains, honest)
    out += check_divergence(chains, honest)
    out += check_certificates(chains, n, honest, verify)
    out += check_monotonic_reads(history, chains, honest)
    if recovery_bound_s is not None:
        out += check_recovery(history, recovery_bound_s, honest=honest)
    out += check_resources(samples, max_rss_growth_bytes, max_fd_growth)
    return out


def history_stats(history: Sequence[Op]) -> dict[str, int]:
    """Counts for a run's report: submissions by outcome, reads, txs seen in a block,
    and accepted txs never seen in one (not a violation: a 202 admits a tx to a
    mempool, which a crash may lose; the report shows how many)."""
    stats: dict[str, int] = defaultdict(int)
    accepted: set[str] = set()
    in_chain: set[str] = set()
    for inv, done in completions(history):
        outcome = "open" if done is None else done.type
        stats[f"{inv.f}.{outcome}"] += 1
        if done is not None and done.f == "submit" and done.type == "ok" and done.tx:
            accepted.add(done.tx)
        if done is not None and done.in_chain and done.tx:
            in_chain.add(done.tx)
    stats["txs.accepted"] = len(accepted)
    stats["txs.seen_in_chain"] = len(in_chain)
    stats["txs.accepted_never_seen_in_chain"] = len(accepted - in_chain)
    stats["faults"] = len(fault_spans(history))
    return dict(stats)
