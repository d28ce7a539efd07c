"""Unit tests of the checker (tests/chaos/checker.py) on crafted histories and chains.

One clean run (4 nodes, 3 blocks, an isolation window, stale reads that are
legal) must give no violation; each breach is then made once and the exact
violation list is asserted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Literal

from tests.chaos.checker import (
    ChainBlock,
    ResourceSample,
    Violation,
    check_all,
    check_double_commit,
    history_stats,
    quorum,
    read_process_resources,
)
from tests.chaos.history import NEMESIS, Op, Phase, Status, check_sequence

A, B, C, D, E = (ch * 64 for ch in "abcde")
N = 4
S = 1_000_000_000  # ns per second


def sha(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()


def make_chain(
    blocks: Sequence[Sequence[str]],
    *,
    roots: dict[int, str] | None = None,
    signers: dict[int, tuple[int, ...]] | None = None,
    views: dict[int, int] | None = None,
) -> list[ChainBlock]:
    """A well-linked chain; per-height overrides of the state root, signers, view."""
    roots, signers, views = roots or {}, signers or {}, views or {}
    parent = "0" * 64
    out = []
    for h, txs in enumerate(blocks, 1):
        root = roots.get(h, sha("root", h))
        block_hash = sha(parent, root, *txs)
        who = signers.get(h, (0, 1, 2))
        view = views.get(h, 0)
        out.append(
            ChainBlock(
                height=h, hash=block_hash, parent_hash=parent, state_root=root,
                tx_hashes=tuple(txs), view=view, signers=who, cert_views=(view,) * len(who),
                cert_digest=sha("cert", h, who),
            )
        )  # fmt: skip
        parent = block_hash
    return out


BLOCKS = [[A, B], [C], [D]]


def clean_chains() -> dict[int, list[ChainBlock]]:
    chains = {y: make_chain(BLOCKS) for y in range(N)}
    # node 3 holds a quorum of other validators: a different certificate, legal
    chains[3] = make_chain(BLOCKS, signers={1: (1, 2, 3), 2: (0, 2, 3)})
    return chains


class Builder:
    """Ops at given times (seconds), sorted into history order at the end."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self._next: dict[int, int] = {}

    def _invoke(
        self, f: Literal["submit", "status"], client: int, tx: str, node: int, t: float
    ) -> int:
        op = self._next.get(client, 0)
        self._next[client] = op + 1
        inv = Op(type="invoke", f=f, client=client, op=op, wall_ns=0, mono_ns=int(t * S),
                 tx=tx, node=node)  # fmt: skip
        self.ops.append(inv)
        return op

    def submit(self, client: int, tx: str, node: int, t: float, done: float) -> Builder:
        op = self._invoke("submit", client, tx, node, t)
        self.ops.append(
            Op(type="ok", f="submit", client=client, op=op, wall_ns=0, mono_ns=int(done * S),
               tx=tx, node=node, status="accepted", code=202)
        )  # fmt: skip
        return self

    def read(
        self,
        client: int,
        tx: str,
        node: int,
        t: float,
        done: float,
        status: Status,
        height: int | None = None,
        index: int | None = None,
    ) -> Builder:
        op = self._invoke("status", client, tx, node, t)
        self.ops.append(
            Op(type="ok", f="status", client=client, op=op, wall_ns=0, mono_ns=int(done * S),
               tx=tx, node=node, status=status, height=height, index=index, code=200)
        )  # fmt: skip
        return self

    def fault(self, window: int, fault: str, start: float, end: float | None) -> Builder:
        phases: tuple[tuple[Phase, float | None], ...] = (("start", start), ("end", end))
        for phase, t in phases:
            if t is not None:
                self.ops.append(
                    Op(type="info", f="nemesis", client=NEMESIS, op=window, wall_ns=0,
                       mono_ns=int(t * S), fault=fault, phase=phase)
                )  # fmt: skip
        return self

    def history(self) -> list[Op]:
        ops = sorted(self.ops, key=lambda op: op.mono_ns)
        assert check_sequence(ops) == []
        return ops


def clean_builder() -> Builder:
    return (
        Builder()
        .submit(0, A, 0, 0.0, 0.1)
        .submit(1, B, 1, 0.0, 0.1)
        .read(2, A, 0, 1.0, 1.1, "committed", 1, 0)
        .read(4, A, 0, 1.05, 1.2, "pending")  # overlaps the committed read: may be older
        .read(3, B, 1, 1.0, 1.1, "committed", 1, 1)
        .fault(0, "isolate node=3", 2.0, 5.0)
        .submit(0, C, 0, 2.5, 2.6)
        .read(2, C, 0, 3.0, 3.1, "pending")
        .read(3, C, 2, 4.0, 4.1, "committed", 2, 0)
        .read(1, C, 3, 4.5, 4.6, "unknown")  # node 3 is cut off and behind: legal
        .submit(0, D, 3, 5.5, 5.6)
        .read(1, D, 1, 6.0, 6.1, "committed", 3, 0)
        .read(2, A, 0, 7.0, 7.1, "committed", 1, 0)
    )


def samples(fds: Sequence[int], node: int = 0, pid: int = 100) -> list[ResourceSample]:
    return [
        ResourceSample(node=node, pid=pid, mono_ns=k * S, rss_bytes=100 << 20, fds=f)
        for k, f in enumerate(fds)
    ]


def run(
    history: list[Op],
    chains: dict[int, list[ChainBlock]],
    *,
    samples: Sequence[ResourceSample] = (),
    honest: Sequence[int] | None = None,
) -> list[Violation]:
    """Every rule, with a 2 s recovery bound."""
    return check_all(history, chains, n=N, recovery_bound_s=2.0, samples=samples, honest=honest)


def test_a_clean_run_has_no_violation() -> None:
    """Stale reads on a lagging node, a read overlapping the commit, differing but
    valid certificates and steady resources are all legal: no violation."""
    steady = samples([30, 31, 30, 32, 31, 30, 31, 30]) + samples([20, 21], pid=101)
    assert run(clean_builder().history(), clean_chains(), samples=steady) == []


def test_a_tx_reported_where_no_chain_has_it() -> None:
    """A node says E is at height 3 index 1; every chain's block 3 has one tx."""
    history = clean_builder().read(5, E, 2, 7.0, 7.2, "committed", 3, 1).history()
    where = "; ".join(f"node {y}: only 1 txs" for y in range(N))
    assert run(history, clean_chains()) == [
        Violation(
            "same-location",
            f"tx {'e' * 12} reported committed at height 3 index 1 by node 2 (client 5 op 0), "
            f"but there {where}",
        )
    ]


def test_a_tx_twice_in_the_chain() -> None:
    """A is in block 1 and again in block 3 on every node: one violation naming all."""
    chains = {y: make_chain([[A, B], [C], [D, A]]) for y in range(N)}
    assert run(clean_builder().history(), chains) == [
        Violation(
            "double-commit",
            f"tx {'a' * 12} is in the chain twice, at height 1 index 0 and height 3 index 1, "
            "on nodes [0, 1, 2, 3]",
        )
    ]


def test_a_tx_reported_at_two_places() -> None:
    """Two honest nodes report B at different places (no chain dumps to compare)."""
    history = (
        Builder()
        .read(0, B, 0, 1.0, 1.1, "committed", 1, 1)
        .read(1, B, 1, 1.0, 1.2, "committed", 2, 0)
        .history()
    )
    assert check_all(history, {}, n=N, honest=range(N)) == [
        Violation(
            "double-commit",
            f"tx {'b' * 12} was reported committed at height 1 index 1 (node 0), "
            "height 2 index 0 (node 1)",
        )
    ]


def test_a_node_with_another_state_root() -> None:
    """Node 3's block 3 has another state root (so another hash): it diverges there."""
    chains = clean_chains()
    chains[3] = make_chain(BLOCKS, roots={3: sha("evil")}, signers={1: (1, 2, 3)})
    a, b = chains[0][2], chains[3][2]
    assert run(clean_builder().history(), chains) == [
        Violation(
            "divergence",
            f"node 3 diverges from node 0 at height 3: hash {a.hash[:12]} != {b.hash[:12]}, "
            f"state root {a.state_root[:12]} != {b.state_root[:12]}",
        )
    ]


def test_a_certificate_short_of_a_quorum_and_one_of_another_view() -> None:
    """Two signers of 4 validators is no quorum; a certificate of view 1 on a header
    of view 0 does not match."""
    chains = clean_chains()
    chains[1] = make_chain(BLOCKS, signers={2: (0, 1)})
    chains[2] = [dataclasses.replace(chains[2][0], cert_views=(0, 1, 0)), *chains[2][1:]]
    assert run(clean_builder().history(), chains) == [
        Violation("certificate", "node 1 height 2: 2 distinct signers, 3 needed"),
        Violation("certificate", "node 2 height 1: certificate views [0, 1], header view 0"),
    ]


def test_a_committed_tx_read_pending_later_on_the_same_node() -> None:
    """Node 0 answered A committed at 1/0, then (invoked after that answer) pending."""
    history = clean_builder().read(2, A, 0, 8.0, 8.1, "pending").history()
    assert run(history, clean_chains()) == [
        Violation(
            "monotonic-read",
            f"node 0: tx {'a' * 12} read committed at height 1 index 0 (client 2 op 0), "
            "later pending (client 2 op 3)",
        )
    ]


def test_a_node_whose_final_chain_lost_a_block_it_reported() -> None:
    """Node 2 reported C at height 2 but its final chain ends at 1: a rollback
    (a node merely behind would be fine, this one contradicts itself)."""
    chains = clean_chains()
    chains[2] = chains[2][:1]
    assert run(clean_builder().history(), chains) == [
        Violation(
            "monotonic-read",
            f"node 2: tx {'c' * 12} read committed at height 2, but its final chain ends at "
            "height 1",
        )
    ]


def test_no_commit_within_the_bound_after_the_last_heal() -> None:
    """The first new block is seen 1.1 s after the heal: over a 1 s bound."""
    history = clean_builder().history()
    assert check_all(history, clean_chains(), n=N, recovery_bound_s=1.0) == [
        Violation(
            "recovery",
            "no block above height 2 committed within 1s of the last heal (at 5.0s): "
            "the first 1.1s after",
        )
    ]


def test_a_fault_never_healed() -> None:
    """A fault window that starts and never ends is a violation of its own."""
    history = clean_builder().fault(1, "ring reach=1", 6.5, None).history()
    assert run(history, clean_chains()) == [
        Violation("recovery", "fault 'ring reach=1' (from 6.5s) never healed")
    ]


def test_a_node_leaking_file_descriptors() -> None:
    """fds growing 30 -> 125 over a run is over a bound of 64; the restarted process
    (another pid) starts afresh and is fine."""
    leak = samples([30, 30, 31, 30, 60, 90, 120, 130]) + samples([20, 21, 20], pid=101)
    assert run(clean_builder().history(), clean_chains(), samples=leak) == [
        Violation(
            "resources", "node 0 (pid 100): open fds grew by 95 (30 -> 125) over 7s, bound 64"
        )
    ]


def test_a_broken_parent_link() -> None:
    """A chain whose block 2 does not name block 1 as parent is malformed."""
    chain = make_chain(BLOCKS)
    chain[1] = dataclasses.replace(chain[1], parent_hash="f" * 64)
    assert check_all([], {0: chain}, n=N) == [
        Violation("chain-shape", f"node 0: block 2 names parent ffffffffffff, the block before "
                  f"is {chain[0].hash[:12]}")
    ]  # fmt: skip


def test_a_byzantine_node_is_ignored() -> None:
    """Outside the honest set, a node's divergent chain and lying answers do not count."""
    chains = clean_chains()
    chains[3] = make_chain([[E], [C], [D]])
    history = clean_builder().read(5, E, 3, 7.0, 7.1, "committed", 1, 0).history()
    assert run(history, chains, honest=[0, 1, 2]) == []
    # counted as honest, it breaks the places of A, B (node 0's and 1's answers) and E
    assert [v.rule for v in run(history, chains)] == [*["same-location"] * 3, "divergence"]


def test_chain_block_from_the_api_json() -> None:
    """``ChainBlock.from_api`` reads the ``GET /v1/blocks/{h}`` shape of docs/blocks.md."""
    block = {
        "hash": "1" * 64,
        "header": {"chain_id": "c", "height": 5, "parent_hash": "2" * 64, "proposer": 1,
                   "state_root": "3" * 64, "timestamp": 9, "tx_root": "4" * 64, "view": 2},
        "txs": [],
        "tx_hashes": [A],
        "certificate": [{"validator": v, "view": 2, "sig": "0" * 128} for v in (0, 2, 3)],
    }  # fmt: skip
    got = ChainBlock.from_api(block)
    assert (got.height, got.hash, got.parent_hash, got.state_root, got.tx_hashes) == (
        5, "1" * 64, "2" * 64, "3" * 64, (A,),
    )  # fmt: skip
    assert (got.view, got.signers, got.cert_views) == (2, (0, 2, 3), (2, 2, 2))
    assert len(got.cert_digest) == 64


def test_quorum_process_resources_and_stats() -> None:
    """The quorum is the replica's; /proc readings of this process are plausible;
    the stats count outcomes and accepted txs never seen in a block."""
    assert [quorum(n) for n in (1, 4, 5, 7)] == [1, 3, 4, 5]
    rss, fds = read_process_resources(os.getpid())
    assert rss > 1 << 20 and fds >= 3
    stats = history_stats(clean_builder().submit(0, E, 0, 8.0, 8.1).history())
    assert stats["submit.ok"] == 5 and stats["status.ok"] == 8
    assert stats["txs.accepted"] == 5 and stats["txs.accepted_never_seen_in_chain"] == 1
    assert stats["faults"] == 1


def test_a_second_copy_from_a_byzantine_proposer_is_allowed_from_an_honest_one_not() -> None:
    tx = "c" * 64

    def block(height: int, parent: str, proposer: int) -> ChainBlock:
        return ChainBlock(
            height=height, hash=f"{height:064x}", parent_hash=parent, state_root="2" * 64,
            tx_hashes=(tx,), view=0, signers=(0, 1, 2), cert_views=(0, 0, 0),
            cert_digest="3" * 64, proposer=proposer,
        )  # fmt: skip

    first = block(1, "0" * 64, 0)
    by_byzantine = [first, block(2, first.hash, 3)]
    by_honest = [first, block(2, first.hash, 1)]
    assert check_double_commit([], {0: by_byzantine}, honest=[0, 1, 2]) == []
    assert [v.rule for v in check_double_commit([], {0: by_honest}, honest=[0, 1, 2])] == [
        "double-commit"
    ]
    # without knowing who is Byzantine, every copy counts
    assert len(check_double_commit([], {0: by_byzantine})) == 1
