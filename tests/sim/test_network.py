"""The network model itself: loss, duplication, latency shapes, reordering, partitions."""

from __future__ import annotations

import random
import statistics

from hypothesis import given
from hypothesis import strategies as st

from node.sim.clock import NodeClock
from node.sim.network import Link, Network, sample_latency
from node.sim.scenario import Latency, LinkRule, NetworkSpec

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
