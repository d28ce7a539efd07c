"""Which chunk a joining node asks which peer for (node/statesync/plan.py,
``ChunkPlan``): requests go out in index order, spread over the sources with at
most ``per_peer`` in flight each; an answered chunk frees a slot; a request
unanswered after ``timeout_ms`` is asked again of another source; a peer that
sent a bad chunk (or whose link went down) is dropped with its requests; the
plan has failed when no source is left before every chunk is in, and is
finished when every chunk is; ``expects`` says whether an answer was asked for."""

from __future__ import annotations

from node.statesync.plan import ChunkPlan

A, B, C = b"peer-a", b"peer-b", b"peer-c"


def loads(requests: list[tuple[bytes, int]]) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for peer, _ in requests:
        out[peer] = out.get(peer, 0) + 1
    return out


def test_requests_spread_in_index_order_with_per_peer_limit() -> None:
    plan = ChunkPlan(10, [A, B, C], per_peer=2)
    asked = plan.requests(0)
    assert [i for _, i in asked] == [0, 1, 2, 3, 4, 5]
    assert loads(asked) == {A: 2, B: 2, C: 2}
    assert asked[:3] == [(A, 0), (B, 1), (C, 2)]  # the least busy source each time
    assert plan.requests(1) == []  # every source is full
    assert plan.progress() == (0, 10)
    assert not plan.finished and not plan.failed


def test_per_peer_one() -> None:
    plan = ChunkPlan(5, [A, B], per_peer=1)
    assert plan.requests(0) == [(A, 0), (B, 1)]
    plan.on_good(B, 1)
    assert plan.requests(1) == [(B, 2)]


def test_fewer_chunks_than_slots() -> None:
    plan = ChunkPlan(3, [A, B, C], per_peer=4)
    asked = plan.requests(0)
    assert sorted(i for _, i in asked) == [0, 1, 2]
    assert loads(asked) == {A: 1, B: 1, C: 1}
    assert plan.requests(1) == []


def test_an_answer_frees_a_slot_for_the_next_missing_chunk() -> None:
    plan = ChunkPlan(6, [A, B], per_peer=2)
    first = plan.requests(0)
    assert sorted(i for _, i in first) == [0, 1, 2, 3]
    peer_of_1 = dict((i, p) for p, i in first)[1]
    plan.on_good(peer_of_1, 1)
    assert plan.requests(10) == [(peer_of_1, 4)]
    assert plan.progress() == (1, 6)


def test_finished_when_every_chunk_is_in() -> None:
    plan = ChunkPlan(4, [A, B], per_peer=2)
    now = 0
    while not plan.finished:
        asked = plan.requests(now)
        assert asked
        for peer, index in asked:
            assert plan.expects(peer, index)
            plan.on_good(peer, index)
        now += 1
    assert plan.progress() == (4, 4)
    assert plan.done == {0, 1, 2, 3}
    assert not plan.failed
    assert plan.requests(now) == []


def test_a_plan_of_no_chunks_is_finished() -> None:
    plan = ChunkPlan(0, [A])
    assert plan.finished and not plan.failed
    assert plan.requests(0) == []


def test_expects() -> None:
    plan = ChunkPlan(4, [A, B], per_peer=1)
    assert not plan.expects(A, 0)  # not asked yet
    assert plan.requests(0) == [(A, 0), (B, 1)]
    assert plan.expects(A, 0) and plan.expects(B, 1)
    assert not plan.expects(B, 0)  # asked of another peer
    assert not plan.expects(A, 2) and not plan.expects(C, 0)
    plan.on_good(A, 0)
    assert not plan.expects(A, 0)  # answered already
    plan.on_bad(B)
    assert not plan.expects(B, 1)  # dropped with its source


def test_timeout_asks_another_peer() -> None:
    plan = ChunkPlan(2, [A, B], per_peer=1, timeout_ms=1000)
    assert plan.requests(0) == [(A, 0), (B, 1)]
    plan.on_good(A, 0)  # A answers at once, B never does
    assert plan.requests(999) == []  # B still has time
    assert plan.expects(B, 1)
    assert plan.requests(1000) == [(A, 1)]
    assert plan.expects(A, 1) and not plan.expects(B, 1)  # B's late answer is not used
    plan.on_good(A, 1)
    assert plan.finished


def test_a_late_answer_after_reassignment_is_not_expected() -> None:
    plan = ChunkPlan(3, [A, B], per_peer=2, timeout_ms=1000)
    assert plan.requests(0) == [(A, 0), (B, 1), (A, 2)]
    plan.on_good(B, 1)
    assert plan.requests(500) == []  # B is free but nothing is missing and not asked
    asked = plan.requests(1000)  # 0 and 2 timed out: B is the least busy
    assert sorted(i for _, i in asked) == [0, 2]
    reassigned = {i: p for p, i in asked}
    for index, peer in reassigned.items():
        assert plan.expects(peer, index)
        if peer != A:
            assert not plan.expects(A, index)


def test_timeout_does_not_ask_the_silent_peer_again() -> None:
    plan = ChunkPlan(2, [A, B], per_peer=1, timeout_ms=1000)
    assert plan.requests(0) == [(A, 0), (B, 1)]
    plan.on_good(B, 1)  # B answers at once, A never does
    # expected: chunk 0 is asked of B; got: of A again, at every timeout
    assert plan.requests(1000) == [(B, 0)]


def test_timeout_reasks_when_every_peer_is_slow() -> None:
    plan = ChunkPlan(2, [A], per_peer=2, timeout_ms=1000)
    assert plan.requests(0) == [(A, 0), (A, 1)]
    assert plan.requests(1500) == [(A, 0), (A, 1)]  # only A is left to ask
    assert plan.requests(2000) == []  # asked again at 1500: not timed out yet


def test_on_bad_drops_the_source_and_its_requests() -> None:
    plan = ChunkPlan(6, [A, B, C], per_peer=1)
    assert plan.requests(0) == [(A, 0), (B, 1), (C, 2)]
    plan.on_bad(B)
    assert plan.sources == [A, C]
    assert not plan.expects(B, 1)
    plan.on_good(A, 0)
    asked = plan.requests(1)
    assert asked == [(A, 1)]  # chunk 1 again, first in index order, of a remaining source
    assert all(peer != B for peer, _ in asked)
    plan.on_bad(B)  # twice: no error
    assert plan.sources == [A, C]


def test_on_gone_drops_the_source() -> None:
    plan = ChunkPlan(2, [A, B], per_peer=1)
    assert plan.requests(0) == [(A, 0), (B, 1)]
    plan.on_gone(A)
    assert plan.sources == [B]
    assert plan.requests(1) == []  # B is busy with 1
    plan.on_good(B, 1)
    assert plan.requests(2) == [(B, 0)]


def test_failed_when_no_source_is_left() -> None:
    plan = ChunkPlan(3, [A, B], per_peer=2)
    plan.requests(0)
    plan.on_good(A, 0)
    plan.on_bad(A)
    assert not plan.failed
    plan.on_gone(B)
    assert plan.failed and not plan.finished
    assert plan.requests(1) == []
    assert plan.progress() == (1, 3)


def test_no_sources_from_the_start() -> None:
    plan = ChunkPlan(2, [])
    assert plan.failed and plan.requests(0) == []


def test_finished_is_not_failed_even_without_sources() -> None:
    plan = ChunkPlan(1, [A])
    assert plan.requests(0) == [(A, 0)]
    plan.on_good(A, 0)
    plan.on_gone(A)
    assert plan.finished and not plan.failed


def test_a_peer_that_never_answers_stops_being_a_source() -> None:
    """After ``max_timeouts`` unanswered requests a linked but silent peer is dropped, so
    the fetch fails (and starts over) instead of waiting for it forever."""
    plan = ChunkPlan(1, [A], per_peer=1, timeout_ms=1000, max_timeouts=3)
    assert plan.requests(0) == [(A, 0)]
    assert plan.requests(1000) == [(A, 0)]
    assert plan.requests(2000) == [(A, 0)]
    assert plan.requests(3000) == [] and plan.failed
