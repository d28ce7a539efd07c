"""The driver's core (``node.engine.core``): how a round's actions are ordered and
handed on, and which entry point each input reaches. Every driver (the daemon's,
the simulator's, the test clusters) carries out rounds in this order."""

from __future__ import annotations

from typing import Any, cast

import pytest

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
from consensus.messages import CommittedBlock, Message, Prepare
from node.engine.core import (
    OnBlock,
    OnExecuted,
    OnMessage,
    OnRequest,
    OnTimer,
    Outbound,
    Round,
    carry_out,
    feed,
    plan,
)


def vote(height: int) -> Prepare:
    return Prepare(0, height, bytes(32), 1, bytes(64))


def block(height: int) -> CommittedBlock:
    return cast(CommittedBlock, f"block-{height}")


def test_messages_before_every_persist_go_at_once_the_rest_after_one_write() -> None:
    """Messages listed before the round's first Persist leave at once; from the
    first Persist on, every message waits for the one batch, in order, even one
    whose own list had no Persist; timers, sync and notes are never held back."""
    early, late1, late2 = Broadcast(vote(1)), Send(2, vote(2)), Relay(0, (b"tx",))
    timer, sync, seen = SetTimer(50), NeedSync(9, (1,)), ViewChanged(1, "timeout")
    actions: list[Action] = [
        early,
        Persist(((b"slot/2", b"a"),)),
        timer,
        late1,
        sync,
        late2,
        seen,
    ]
    r = plan(actions)
    assert r.first == (early, timer, sync, seen)
    assert r.write == Persist(((b"slot/2", b"a"),))
    assert r.then == (late1, late2)
    assert list(r) == [early, timer, sync, seen, r.write, late1, late2]


def test_one_batch_holds_the_last_value_of_each_key_in_first_write_order() -> None:
    """Several Persists (of several inputs) become one write: what writing them one
    after the other would leave, keys in the order first written; None deletes."""
    r = plan(
        [
            Persist(((b"slot/1", b"a"), (b"view", b"v0"))),
            Persist(((b"slot/2", b"b"),)),
            Persist(((b"slot/1", None), (b"view", b"v1"))),
        ]
    )
    assert r.write == Persist(((b"slot/1", None), (b"view", b"v1"), (b"slot/2", b"b")))
    assert r.first == () and r.then == ()


def test_blocks_are_stored_after_the_write_and_its_messages() -> None:
    """Delivered blocks come last, in delivery order, whether or not there is a write."""
    b1, b2 = Deliver(block(1)), Deliver(block(2))
    commit = Broadcast(vote(3))
    r = plan([b1, Persist(((b"k", b"v"),)), commit, b2])
    assert r.first == () and r.then == (commit, b1, b2)
    without = plan([b1, commit, b2])
    assert without.write is None and without.first == (commit,)
    assert without.then == (b1, b2)


def test_a_persist_without_records_holds_nothing_back() -> None:
    send = Send(1, vote(1))
    r = plan([Persist(()), send])
    assert r == Round((send,), None, ())


class Recorder:
    """``Edges`` that write down what they are asked to do."""

    def __init__(self) -> None:
        self.done: list[tuple[str, object]] = []

    def transmit(self, action: Outbound) -> None:
        self.done.append(("transmit", action))

    def execute(self, block: CommittedBlock) -> None:
        self.done.append(("execute", block))

    def arm_timer(self, at: int) -> None:
        self.done.append(("arm_timer", at))

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        self.done.append(("need_sync", (target, hints)))

    def note(self, action: Rejected | ViewChanged | Evidence | Divergence) -> None:
        self.done.append(("note", action))


def test_carry_out_hands_each_kind_of_step_to_its_edge() -> None:
    edges = Recorder()
    send, relay = Send(1, vote(1)), Relay(2, (b"tx",))
    rejected, divergence = Rejected(3, "bad-signature"), Divergence(4, b"a", b"b")
    for action in (
        send,
        relay,
        SetTimer(70),
        Deliver(block(5)),
        NeedSync(8, (2, 3)),
        rejected,
        divergence,
    ):
        carry_out(action, edges)
    assert edges.done == [
        ("transmit", send),
        ("transmit", relay),
        ("arm_timer", 70),
        ("execute", block(5)),
        ("need_sync", (8, (2, 3))),
        ("note", rejected),
        ("note", divergence),
    ]
    with pytest.raises(TypeError):
        carry_out(Persist(((b"k", b"v"),)), edges)


class EntryPoints:
    """Records which entry point an input reached, with what."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_message(self, msg: Message, now: int, epoch: int = 0) -> list[Action]:
        self.calls.append(("on_message", msg, now))
        return [SetTimer(now)]

    def on_request(self, request: bytes, now: int) -> list[Action]:
        self.calls.append(("on_request", request, now))
        return []

    def on_timer(self, now: int) -> list[Action]:
        self.calls.append(("on_timer", now))
        return []

    def on_executed(self, height: int, state_root: bytes, now: int) -> list[Action]:
        self.calls.append(("on_executed", height, state_root, now))
        return []

    def on_committed_block(self, block: CommittedBlock, now: int) -> list[Action]:
        self.calls.append(("on_committed_block", block, now))
        return []


def test_feed_reaches_the_entry_point_of_each_input_with_the_time_given() -> None:
    replica = EntryPoints()
    msg = vote(1)
    assert feed(replica, OnMessage(msg), 10) == [SetTimer(10)]
    feed(replica, OnRequest(b"tx"), 11)
    feed(replica, OnTimer(), 12)
    feed(replica, OnExecuted(3, b"r"), 13)
    feed(replica, OnBlock(block(4)), 14)
    assert replica.calls == [
        ("on_message", msg, 10),
        ("on_request", b"tx", 11),
        ("on_timer", 12),
        ("on_executed", 3, b"r", 13),
        ("on_committed_block", block(4), 14),
    ]
