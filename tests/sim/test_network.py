"""The network model itself: loss, duplication, latency shapes, reordering, partitions,
the peer frame size limit and the daemon's height announcements (status_sync)."""

from __future__ import annotations

import dataclasses
import random
import statistics
from functools import partial
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from consensus.messages import (
    Checkpoint,
    CommittedBlock,
    Message,
    NewView,
    NewViewRequest,
    Prepare,
    PreparedCert,
    Proposal,
    encode_message,
)
from node.net.wire import CONSENSUS_FRAME_OVERHEAD, MAX_EPOCH, ConsensusFrame, encode_frame
from node.sim import report
from node.sim.clock import NodeClock
from node.sim.engine import Simulation
from node.sim.network import (
    SYNC_BLOCK_OVERHEAD,
    SYNC_FRAME_RESERVE,
    FrameLimit,
    Link,
    Network,
    sample_latency,
)
from node.sim.node import SimNode
from node.sim.scenario import (
    DEFAULT_MAX_FRAME_BYTES,
    Fault,
    Latency,
    LinkRule,
    NetworkSpec,
    Scenario,
    load,
)
from tests.sim.helpers import SCENARIO_DIR

DRAWS = 100_000


def _link(
    rng: random.Random, loss: int = 0, dup: int = 0, reorder: int = 0, reorder_ms: int = 50
) -> Link:
    return Link(rng, Latency("constant", 10, 0), loss, dup, reorder, reorder_ms)


def test_loss_rate_close_to_configured():
    link = _link(random.Random(1), loss=50_000)
    lost = sum(1 for _ in range(DRAWS) if not link.delays())
    assert 0.045 < lost / DRAWS < 0.055


def test_duplication_rate_close_to_configured():
    link = _link(random.Random(2), dup=100_000)
    copies = [len(link.delays()) for _ in range(DRAWS)]
    assert set(copies) == {1, 2}
    assert 0.09 < copies.count(2) / DRAWS < 0.11


def test_no_fault_constant_link_uses_no_randomness():
    rng = random.Random(3)
    state = rng.getstate()
    link = _link(rng)
    assert all(link.delays() == (10,) for _ in range(100))
    assert rng.getstate() == state


def test_uniform_latency_covers_its_bounds_only():
    rng = random.Random(4)
    seen = {sample_latency(rng, Latency("uniform", 50, 300)) for _ in range(20_000)}
    assert min(seen) == 50 and max(seen) == 300


def test_normal_latency_mean_and_jitter():
    rng = random.Random(5)
    xs = [sample_latency(rng, Latency("normal", 100, 20)) for _ in range(DRAWS)]
    assert all(isinstance(x, int) and x >= 0 for x in xs)
    assert abs(statistics.fmean(xs) - 100) < 1
    assert 18 < statistics.pstdev(xs) < 22


def test_reordering_adds_bounded_extra_delay():
    link = _link(random.Random(6), reorder=500_000, reorder_ms=40)
    ds = [link.delays()[0] for _ in range(10_000)]
    assert min(ds) == 10 and max(ds) == 50
    assert 0.4 < sum(1 for d in ds if d > 10) / len(ds) < 0.6


def test_partition_cuts_links_between_groups_and_heal_restores():
    net = Network(NetworkSpec(), 5, random.Random(7))
    net.partition([[0, 1], [2, 3]])
    assert net.delays(0, 1) == (10,)
    assert net.delays(2, 3) == (10,)
    assert net.delays(0, 2) == () and net.delays(3, 1) == ()
    # node 4 is in no group: it forms a group of its own
    assert net.delays(4, 0) == () and net.delays(2, 4) == ()
    net.heal()
    assert all(net.delays(a, b) == (10,) for a in range(5) for b in range(5))


def test_link_rules_override_only_their_directed_links():
    spec = NetworkSpec(
        links=(LinkRule(src=(0,), dst=(1, 2), latency=Latency("constant", 99, 0), loss_ppm=0),)
    )
    net = Network(spec, 3, random.Random(8))
    assert net.delays(0, 1) == (99,) and net.delays(0, 2) == (99,)
    assert net.delays(1, 0) == (10,) and net.delays(2, 1) == (10,)


def test_same_seed_same_draws():
    spec = NetworkSpec(latency=Latency("uniform", 1, 500), loss_ppm=100_000, duplicate_ppm=50_000)
    a = Network(spec, 4, random.Random(9))
    b = Network(spec, 4, random.Random(9))
    assert [a.delays(i % 4, (i + 1) % 4) for i in range(1000)] == [
        b.delays(i % 4, (i + 1) % 4) for i in range(1000)
    ]


@given(
    offset=st.integers(-5_000, 5_000),
    rate=st.integers(-200_000, 200_000),
    local=st.integers(-10_000, 10_000_000),
)
def test_clock_virtual_at_is_the_first_instant_showing_local(offset, rate, local):
    clock = NodeClock(1_000, offset, rate)
    target = clock.base + local
    t = clock.virtual_at(target)
    assert clock.local(t) >= target
    assert clock.local(t - 1) < target


# -- frame size limit -----------------------------------------------------------


def test_frame_model_matches_the_daemon():
    from node.net.transport import DEFAULT_MAX_FRAME_BYTES as DAEMON_DEFAULT

    assert DEFAULT_MAX_FRAME_BYTES == DAEMON_DEFAULT == NetworkSpec().max_frame_bytes
    frames = FrameLimit(DEFAULT_MAX_FRAME_BYTES)
    for msg in (
        Prepare(3, 7, b"d" * 32, 1, b"s" * 64),
        Checkpoint(16, b"r" * 32, 2, b"s" * 16),
        NewViewRequest(1 << 40, 3, b""),
    ):
        # the model counts the epoch at its widest: never below the daemon's frame
        assert frames.frame_size(msg) == len(encode_frame(ConsensusFrame(msg, MAX_EPOCH)))
        assert frames.frame_size(msg) >= len(encode_frame(ConsensusFrame(msg, 3)))
        assert frames.frame_size(msg, encode_message(msg)) == frames.frame_size(msg)


def test_frame_limit_is_inclusive_and_sizes_are_cached_per_object():
    msg = Checkpoint(16, b"r" * 100, 2, b"s" * 16)
    size = FrameLimit(1 << 20).frame_size(msg)
    assert FrameLimit(size).fits(msg) and not FrameLimit(size - 1).fits(msg)
    frames = FrameLimit(size)
    assert frames.frame_size(msg) == size
    assert frames._cache[id(msg)] == (msg, size - CONSENSUS_FRAME_OVERHEAD)


def _block(height: int, payload_bytes: int) -> CommittedBlock:
    payload = (b"tx:" + b"." * payload_bytes,)
    return CommittedBlock(Proposal("c", height, 1, 0, b"r" * 32), payload, ())


def test_sync_responses_are_cut_to_the_frame_budget_like_the_daemon():
    blocks = [_block(h, 10_000) for h in range(1, 11)]
    each = FrameLimit(1 << 20).block_size(blocks[0]) + SYNC_BLOCK_OVERHEAD
    frames = FrameLimit(SYNC_FRAME_RESERVE + 3 * each)
    assert [b.height for b in frames.cut_blocks(blocks)] == [1, 2, 3]
    assert FrameLimit(SYNC_FRAME_RESERVE + each - 1).cut_blocks(blocks) == ()


def _tight_frames(max_frame_bytes: int) -> Scenario:
    """happy-n4 with 1 KB transactions and batches of 10 under ``max_frame_bytes``
    (the config check of message sizes is turned off, so a replica may overstep it)."""
    base = load(SCENARIO_DIR / "happy-n4.toml")
    knobs = dict(base.consensus)
    knobs.update(batch_max_count=10, max_message_bytes=0)
    return base.replace(
        consensus=tuple(sorted(knobs.items())),
        network=dataclasses.replace(base.network, max_frame_bytes=max_frame_bytes),
        workload=dataclasses.replace(base.workload, tx_size=1024),
        stop_at_height=5,
    )


def test_an_honest_message_over_the_limit_is_dropped_and_violates_frame_size():
    sim = Simulation(_tight_frames(4096), 1).run()
    assert sim.metrics.oversized_honest.get("pre_prepare", 0) > 0
    assert sim.metrics.oversized == sim.metrics.oversized_honest
    verdict = report.build(sim)["invariants"]["frame_size"]
    assert not verdict["ok"] and verdict["first"]["message"] == "pre_prepare"
    assert verdict["first"]["frame_bytes"] > 4096 == verdict["first"]["max_frame_bytes"]
    assert sim.checker.committed == {}  # dropped means never delivered
    ok = Simulation(_tight_frames(64 * 1024), 1).run()
    assert ok.metrics.oversized == {} and report.build(ok)["ok"]


def test_the_frame_limit_sets_the_replicas_message_limit():
    s = load(SCENARIO_DIR / "view-change-large-payloads-n7.toml")
    assert s.consensus_config().max_message_bytes == (
        s.network.max_frame_bytes - CONSENSUS_FRAME_OVERHEAD
    )


class _Recording(Simulation):
    """Keeps every NEW-VIEW an honest replica broadcasts."""

    new_views: list[NewView]

    def _broadcast(self, node: SimNode, msg: Message, vt: int, epoch: int = 0) -> None:
        if isinstance(msg, NewView) and node.honest:
            self.new_views.append(msg)
        super()._broadcast(node, msg, vt, epoch)


def test_view_change_under_large_payloads_stays_under_the_frame_limit():
    path = SCENARIO_DIR / "view-change-large-payloads-n7.toml"
    scenario = load(path)
    sim = _Recording(scenario, 3)
    sim.new_views = []
    sim.run()
    rep = report.build(sim)
    assert rep["ok"], {k: v["first"] for k, v in rep["invariants"].items() if not v["ok"]}
    assert sim.metrics.oversized_honest == {}
    limit = scenario.network.max_frame_bytes
    assert sim.metrics.largest_frame["pre_prepare"] > limit // 16  # 128 KB blocks
    # the view change carried prepared certificates of full blocks: with their
    # payloads inside, the NEW-VIEW would not have fitted in a frame
    assert sim.new_views
    nv = max(sim.new_views, key=lambda m: sum(len(vc.prepared) for vc in m.view_changes))
    chain = {b.proposal.digest(): b.payload for b in sim.nodes[1].store.chain}
    full = msgspec.structs.replace(
        nv,
        view_changes=tuple(
            msgspec.structs.replace(
                vc,
                prepared=tuple(
                    PreparedCert(
                        c.pre_prepare.with_payload(chain[c.pre_prepare.proposal.digest()]),
                        c.prepares,
                    )
                    for c in vc.prepared
                ),
            )
            for vc in nv.view_changes
        ),
    )
    frames = FrameLimit(limit)
    assert frames.fits(nv) and not frames.fits(full)


# -- the daemon's StatusFrame sync (status_sync) ----------------------------------


def _status_scenario(**net: Any) -> Scenario:
    base = load(SCENARIO_DIR / "happy-n4.toml")
    return base.replace(
        network=dataclasses.replace(base.network, status_sync=True, **net),
        faults=(Fault("partition", 500, 3000, groups=((3,), (0, 1, 2))),),
        stop_at_height=60,
        duration_ms=9000,
    )


def test_status_announcements_go_through_the_network_model():
    sim = Simulation(_status_scenario(), 2)
    seen: dict[tuple[int, int], dict[int, int]] = {}

    def look(t: int, i: int) -> None:
        seen[(t, i)] = dict(sim.peer_heights[i])

    for t in (1600, 2900):  # inside the partition (500..3000), a status round apart
        for i in (0, 3):
            sim.call_at(t, partial(look, t, i))
    sim.run()
    assert report.build(sim)["ok"]
    assert sim.metrics.sent["status_frame"] > 0
    # the majority heard each other's progress, but nothing new from or to node 3
    assert seen[(2900, 0)][1] > seen[(1600, 0)][1]
    assert seen[(2900, 0)].get(3) == seen[(1600, 0)].get(3)
    assert seen[(2900, 3)] == seen[(1600, 3)]
    # after the heal it learned it was behind and synced on the announcements
    assert sim.metrics.status_syncs > 0
    assert sim.nodes[3].store.height >= 60


def test_status_sync_is_off_by_default():
    sim = Simulation(load(SCENARIO_DIR / "happy-n4.toml"), 2).run()
    assert "status_frame" not in sim.metrics.sent and sim.metrics.status_syncs == 0


class _AskRecorder(Simulation):
    """Records the peers each sync request would go to instead of sending it."""

    asked: list[tuple[int, ...]]

    def _need_sync(self, node: SimNode, hints: tuple[int, ...], vt: int) -> None:
        self.asked.append(hints)


def test_lag_threshold_and_stall_decide_when_to_sync():
    sim = _AskRecorder(_status_scenario(sync_lag_threshold=8, sync_stall_ms=3000), 2)
    sim.asked = []
    node = sim.nodes[0]
    node.up = True
    sim.peer_heights[0] = {1: 8, 2: 5}
    sim._status_check(node, 1000)  # 8 ahead: within the threshold, not stalled
    assert sim.asked == []
    sim.peer_heights[0][2] = 9
    sim._status_check(node, 1000)  # 9 ahead: behind; ask who covers the next chunk
    assert sim.asked == [(2,)]
    sim.peer_heights[0] = {1: 1}
    sim._status_check(node, 3001)  # 1 ahead and no progress for 3 s: stalled
    assert sim.asked[-1] == (1,)
    sim.peer_heights[0] = {1: 100, 2: 20, 3: 70}
    sim._status_check(node, 3001)  # the chunk ends at 64: peers announcing at least that
    assert sim.asked == [(2,), (1,), (1, 3)]
