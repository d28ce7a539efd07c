"""The daemon's consensus driver (``node.engine.driver.ConsensusDriver``) in an event loop.

The replica is scripted and the block applier only records the order of the
blocks it is asked to apply (refusing a gap, as ``node.engine.applier.BlockApplier``
does), so these tests pin the driver's own contract, the IO at the edges of
the driver's core (``node.engine.core``, which the simulator runs too:
``docs/simulator.md``): blocks are applied in the order the replica listed
them, and the actions ``Replica.on_executed`` returns run after the rest of
the list that delivered the block; the ``Persist`` records of the inputs
waiting together are written in one synced batch before any message that
follows them leaves and before the blocks of the round are applied; a block
being applied does not hold up the votes for later heights; no message the
replica sends can stop the driver (a frame over the limit, a send that
raises); a write that fails (``StorageWriteError``: a full disk) suspends
it: nothing that waited for that write is sent, no later input reaches the
replica, the failure goes to ``hooks.on_storage_failure`` and the process
goes on; any other storage failure still stops it; refusals and evidence are
handed to ``hooks.blame``. Each test runs its driver through
``running_driver``, which builds the hooks and the storage executor, starts
the driver and always stops it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from consensus.actions import (
    Action,
    Broadcast,
    Deliver,
    Evidence,
    Persist,
    Rejected,
    Relay,
    Send,
    SetTimer,
)
from consensus.messages import Prepare, PrePrepare, Proposal
from node.engine.applier import ApplyError
from node.engine.driver import ConsensusDriver, DriverHooks
from node.ops.consensus_counts import ConsensusCounts
from node.ops.metrics import NodeMetrics
from storage.errors import StorageWriteError


class ScriptedReplica:
    """Answers ``on_message`` with a fixed action list and ``on_executed(h)`` from a table."""

    me = 0
    view = 0

    def __init__(self, on_message: list[Action], after: dict[int, list[Action]]) -> None:
        self._on_message = on_message
        self._after = after

    def start(self, now: int) -> list[Action]:
        return []

    def on_message(self, msg: Any, now: int, epoch: int = 0) -> list[Action]:
        return self._on_message

    def on_executed(self, height: int, state_root: bytes, now: int) -> list[Action]:
        return self._after.get(height, [])


class RecordingApplier:
    """Records the heights it is given; like ``BlockApplier``, refuses a gap."""

    def __init__(self) -> None:
        self.tip = 0
        self.order: list[int] = []

    def apply(self, committed: Any) -> tuple[Any, Any]:
        h = int(committed.height)
        self.order.append(h)
        if h != self.tip + 1:
            raise ApplyError(f"block {h} out of order: tip is {self.tip}")
        self.tip = h
        return SimpleNamespace(height=h), SimpleNamespace(state_root=bytes(32))


def _deliver(height: int) -> Deliver:
    return Deliver(cast(Any, SimpleNamespace(height=height)))


@asynccontextmanager
async def running_driver(
    replica: Any,
    *,
    peers: list[bytes],
    send: Callable[[bytes, bytes], bool] = lambda _peer, _frame: True,
    on_block: Callable[[Any, Any], None] = lambda _block, _outcome: None,
    applier: Any = None,
    store: Any = None,
    threads: int = 1,
    **extra_hooks: Any,
) -> AsyncIterator[ConsensusDriver]:
    """A started ``ConsensusDriver`` over ``replica`` (a fresh ``RecordingApplier``
    and ``RecordingStore`` unless given), stopped on leaving the block; the other
    ``DriverHooks`` fields (``observer``, ``max_frame_bytes``, ``blame``) come as
    keywords, ``on_need_sync`` does nothing."""
    hooks = DriverHooks(
        send=send,
        on_block=on_block,
        on_need_sync=lambda _target, _hints: None,
        **extra_hooks,
    )
    with ThreadPoolExecutor(threads) as executor:
        driver = ConsensusDriver(
            cast(Any, replica),
            cast(Any, RecordingApplier() if applier is None else applier),
            cast(Any, RecordingStore() if store is None else store),
            peers,
            hooks,
            executor,
        )
        try:
            await driver.start()
            yield driver
        finally:
            await driver.stop()


async def _poll(
    cond: Callable[[], bool], driver: ConsensusDriver, stalled: Callable[[], str]
) -> bool:
    """Sleep until ``cond()`` holds (True) or the driver has stopped on a fatal
    error (False); fail with ``stalled()`` after 5 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not cond():
        if driver.fatal is not None:
            return False
        assert loop.time() < deadline, stalled()
        await asyncio.sleep(0.005)
    return True


async def test_blocks_listed_before_on_executed_actions_are_applied_first() -> None:
    """A list [Deliver 1, Deliver 2] whose on_executed(1) adds [Deliver 3] (what a
    replica that is catching up does when height 1 makes a checkpoint stable and a
    replayed commit completes height 3) is applied as 1, 2, 3 and the driver goes on."""
    replica = ScriptedReplica([_deliver(1), _deliver(2)], after={1: [_deliver(3)]})
    applier = RecordingApplier()
    blocks: list[int] = []
    async with running_driver(
        replica,
        peers=[bytes(32)],
        on_block=lambda block, _outcome: blocks.append(block.height),
        applier=applier,
        store=SimpleNamespace(),
    ) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _poll(
            lambda: len(applier.order) >= 3,
            driver,
            lambda: f"driver stalled; applied so far {applier.order}",
        )
    assert driver.fatal is None, f"driver stopped: {driver.fatal!r} (applied {applier.order})"
    assert applier.order == [1, 2, 3]
    assert blocks == [1, 2, 3]


class QueueReplica:
    """Answers each ``on_message`` with the next action list of a script."""

    me = 0
    view = 0

    def __init__(self, script: list[list[Action]]) -> None:
        self.script = list(script)
        self.executed: list[int] = []

    def start(self, now: int) -> list[Action]:
        return []

    def on_message(self, msg: Any, now: int, epoch: int = 0) -> list[Action]:
        return self.script.pop(0)

    def on_executed(self, height: int, state_root: bytes, now: int) -> list[Action]:
        self.executed.append(height)
        return []


class RecordingStore:
    """Records each ``persist_consensus`` batch and what is durable."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[bytes, bytes | None]]] = []
        self.durable: dict[bytes, bytes | None] = {}

    def persist_consensus(self, records: list[tuple[bytes, bytes | None]]) -> None:
        self.batches.append(list(records))
        self.durable.update(records)


PEERS = [b"\x00" * 32, b"\x01" * 32]


async def _wait(cond: Callable[[], bool], what: str, driver: ConsensusDriver) -> None:
    """Like ``_poll``, but a driver that stopped before ``cond()`` holds fails the test."""
    held = await _poll(cond, driver, lambda: f"timed out waiting for {what}")
    assert held, f"driver stopped: {driver.fatal!r}"


async def test_inputs_waiting_together_share_one_synced_write_before_their_messages() -> None:
    """Two inputs queued before the driver runs: their Persist records go out as ONE
    batch (the later value of a key written twice wins, as two writes would leave
    it), and both messages are sent after it, in the order they were produced."""
    store = RecordingStore()
    replica = QueueReplica(
        [
            [Persist(((b"slot/1", b"a"),)), Relay(1, (b"first",))],
            [Persist(((b"slot/1", b"b"), (b"view", b"v"))), Relay(1, (b"second",))],
        ]
    )
    sent: list[tuple[bytes, dict[bytes, bytes | None]]] = []

    def send(_peer: bytes, frame: bytes) -> bool:
        sent.append((frame, dict(store.durable)))
        return True

    async with running_driver(replica, peers=PEERS, send=send, store=store) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 2, "both messages", driver)
    assert store.batches == [[(b"slot/1", b"b"), (b"view", b"v")]]
    assert b"first" in sent[0][0] and b"second" in sent[1][0]
    for _frame, durable in sent:
        assert durable == {b"slot/1": b"b", b"view": b"v"}, "a message left before its record"


async def test_the_blocks_of_a_round_are_applied_after_its_write() -> None:
    """A round [Deliver 1, Persist]: the block reaches the applier only once the
    round's records are durable (a crash cannot leave the block without them),
    even when storage could run both at once (two threads, a slow write)."""

    class SlowStore(RecordingStore):
        def persist_consensus(self, records: list[tuple[bytes, bytes | None]]) -> None:
            time.sleep(0.1)
            super().persist_consensus(records)

    store = SlowStore()
    durable_at_apply: list[dict[bytes, bytes | None]] = []

    class CheckingApplier(RecordingApplier):
        def apply(self, committed: Any) -> tuple[Any, Any]:
            durable_at_apply.append(dict(store.durable))
            return super().apply(committed)

    replica = QueueReplica([[_deliver(1), Persist(((b"slot/2", b"a"),))]])
    async with running_driver(
        replica, peers=PEERS, applier=CheckingApplier(), store=store, threads=2
    ) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: replica.executed == [1], "on_executed(1)", driver)
    assert durable_at_apply == [{b"slot/2": b"a"}]


async def test_a_block_being_applied_does_not_hold_up_later_votes() -> None:
    """While block 1 is still being written, the next input's message goes out;
    once the write finishes, on_block runs and on_executed(1) reaches the replica."""
    release = threading.Event()

    class SlowApplier(RecordingApplier):
        def apply(self, committed: Any) -> tuple[Any, Any]:
            assert release.wait(5.0), "test never released the block"
            return super().apply(committed)

    store = RecordingStore()
    replica = QueueReplica([[_deliver(1)], [Relay(1, (b"vote-for-2",))]])
    sent: list[bytes] = []
    blocks: list[int] = []

    def send(_peer: bytes, frame: bytes) -> bool:
        sent.append(frame)
        return True

    async with running_driver(
        replica,
        peers=PEERS,
        send=send,
        on_block=lambda block, _outcome: blocks.append(block.height),
        applier=SlowApplier(),
        store=store,
    ) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await asyncio.sleep(0)  # the first round hands block 1 to the apply task
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 1, "the message after the block", driver)
        assert blocks == [] and replica.executed == []
        release.set()
        await _wait(lambda: replica.executed == [1], "on_executed(1)", driver)
    assert blocks == [1]


def _big_pre_prepare(payload_bytes: int) -> PrePrepare:
    proposal = Proposal("hygeia-test", 1, 1, 0, bytes(32))
    return PrePrepare(0, proposal, (b"x" * payload_bytes,), 0, bytes(64))


PEERS4 = [bytes([i]) * 32 for i in range(4)]
FRAME_LIMIT = 4096


def _transport_send(limit: int, sent: list[tuple[bytes, bytes]]) -> Any:
    """A ``send`` that refuses a frame over ``limit`` by raising, as the transport
    did before it learnt to drop them: the driver must not depend on either."""

    def send(peer: bytes, frame: bytes) -> bool:
        if len(frame) > limit:
            raise ValueError(f"frame of {len(frame)} bytes exceeds {limit}")
        sent.append((peer, frame))
        return True

    return send


async def test_a_message_over_the_frame_limit_is_dropped_and_counted_not_fatal() -> None:
    """A broadcast whose frame is over the limit (a NEW-VIEW of 4.29 MiB at n = 7
    used to stop each new primary in turn) is not sent, counted per recipient as
    ``too_large`` in the stats and the metrics, and the driver processes the next
    input; relayed requests too many for one frame go in several frames."""
    replica = QueueReplica(
        [
            [Broadcast(_big_pre_prepare(2 * FRAME_LIMIT))],
            [Send(2, _big_pre_prepare(FRAME_LIMIT))],
            [Relay(1, tuple(bytes([i]) * 1000 for i in range(10)))],
            [Broadcast(Prepare(0, 1, bytes(32), 0, bytes(64)))],
        ]
    )
    sent: list[tuple[bytes, bytes]] = []
    metrics = NodeMetrics()
    async with running_driver(
        replica,
        peers=PEERS4,
        send=_transport_send(FRAME_LIMIT, sent),
        observer=metrics,
        max_frame_bytes=FRAME_LIMIT,
    ) as driver:
        for _ in range(4):
            driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 3 + 3, "the relay frames and the last prepare", driver)
    assert driver.fatal is None
    relayed = [frame for peer, frame in sent if peer == PEERS4[1] and b"\x00" * 1000 in frame]
    assert len(relayed) == 1 and all(len(frame) <= FRAME_LIMIT for _, frame in sent)
    assert sum(frame.count(bytes([i]) * 1000) for _, frame in sent for i in range(10)) == 10
    assert [peer for peer, frame in sent if b"prepare" in frame] == PEERS4[1:]
    assert metrics.consensus.messages_dropped.counts == {("PrePrepare", "too_large"): 4}
    assert metrics.consensus.messages_out.by_first() == {"Prepare": 3}
    text = metrics.render().decode()
    line = 'hygeia_consensus_messages_dropped_total{reason="too_large",type="PrePrepare"} 4.0'
    assert line in text


async def test_a_send_that_raises_drops_that_message_only() -> None:
    """Any exception while handing one message to the transport drops that copy
    (``send_error``); the other recipients get it, and the driver goes on."""
    replica = QueueReplica(
        [
            [Broadcast(Prepare(0, 1, bytes(32), 0, bytes(64)))],
            [Broadcast(Prepare(0, 2, bytes(32), 0, bytes(64)))],
        ]
    )
    sent: list[bytes] = []

    def send(peer: bytes, _frame: bytes) -> bool:
        if peer == PEERS4[2]:
            raise RuntimeError("transport bug")
        sent.append(peer)
        return True

    counts = ConsensusCounts()
    async with running_driver(replica, peers=PEERS4, send=send, observer=counts) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 2, "the first prepare", driver)
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 4, "the second prepare", driver)
    assert driver.fatal is None
    assert sent == [PEERS4[1], PEERS4[3]] * 2
    assert counts.messages_dropped.counts == {("Prepare", "send_error"): 2}


async def test_a_storage_failure_other_than_a_failed_write_still_stops_consensus() -> None:
    class FailingStore(RecordingStore):
        def persist_consensus(self, records: list[tuple[bytes, bytes | None]]) -> None:
            raise OSError("disk gone")

    replica = QueueReplica([[Persist(((b"slot/1", b"a"),)), Relay(1, (b"vote",))]])
    sent: list[bytes] = []

    def send(_peer: bytes, frame: bytes) -> bool:
        sent.append(frame)
        return True

    async with running_driver(replica, peers=PEERS4, send=send, store=FailingStore()) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        with pytest.raises(AssertionError, match="disk gone"):
            await _wait(lambda: False, "the driver to stop", driver)
    assert isinstance(driver.fatal, OSError) and sent == []


FULL = StorageWriteError(Path("/data"), "IO error: /data/000014.log: No space left on device")


class FullStore(RecordingStore):
    """Every ``persist_consensus`` fails as on a full disk."""

    def persist_consensus(self, records: list[tuple[bytes, bytes | None]]) -> None:
        self.batches.append(list(records))
        raise FULL


async def test_a_vote_that_cannot_be_persisted_is_never_sent_and_consensus_suspends() -> None:
    """The round's write fails: the message listed before its Persist was sent, the vote
    after it never is; the driver suspends (not fatal), tells ``on_storage_failure``
    once, and no later input reaches the replica."""
    store = FullStore()
    replica = QueueReplica(
        [
            [Relay(1, (b"before",)), Persist(((b"slot/1", b"a"),)), Relay(1, (b"vote",))],
            [Relay(1, (b"later",))],
        ]
    )
    sent: list[bytes] = []
    reported: list[StorageWriteError] = []

    def send(_peer: bytes, frame: bytes) -> bool:
        sent.append(frame)
        return True

    async with running_driver(
        replica, peers=PEERS4, send=send, store=store, on_storage_failure=reported.append
    ) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: driver.suspended is not None, "the driver to suspend", driver)
        driver.submit_message(cast(Any, SimpleNamespace()))  # dropped: nothing reads it
    assert driver.suspended is FULL and driver.fatal is None and reported == [FULL]
    assert len(store.batches) == 1 and len(sent) == 1
    assert b"before" in sent[0] and b"vote" not in sent[0]
    assert len(replica.script) == 1  # the later input never reached the replica


async def test_a_block_that_cannot_be_written_suspends_consensus() -> None:
    """Applying a delivered block fails on the full disk: suspended, not fatal; the block
    is not reported as committed nor fed back as executed."""

    class FullApplier(RecordingApplier):
        def apply(self, committed: Any) -> tuple[Any, Any]:
            raise FULL

    replica = QueueReplica([[_deliver(1)], [Relay(1, (b"later",))]])
    blocks: list[Any] = []
    reported: list[StorageWriteError] = []
    async with running_driver(
        replica,
        peers=PEERS4,
        applier=FullApplier(),
        on_block=lambda block, _outcome: blocks.append(block),
        on_storage_failure=reported.append,
    ) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: driver.suspended is not None, "the driver to suspend", driver)
        driver.submit_message(cast(Any, SimpleNamespace()))
    assert driver.fatal is None and reported == [FULL]
    assert blocks == [] and replica.executed == [] and len(replica.script) == 1


async def test_a_write_that_fails_as_the_driver_starts_is_raised() -> None:
    """``start`` raises it (the daemon's resume counts that as a failed retry) without
    telling ``on_storage_failure``; nothing that followed the write is sent or armed."""

    class StartingReplica(QueueReplica):
        def start(self, now: int) -> list[Action]:
            return [Persist(((b"view", b"1"),)), Relay(1, (b"status",)), SetTimer(now + 10)]

    sent: list[bytes] = []
    reported: list[StorageWriteError] = []

    def send(_peer: bytes, frame: bytes) -> bool:
        sent.append(frame)
        return True

    hooks = DriverHooks(
        send=send,
        on_block=lambda _block, _outcome: None,
        on_need_sync=lambda _target, _hints: None,
        on_storage_failure=reported.append,
    )
    with ThreadPoolExecutor(1) as executor:
        driver = ConsensusDriver(
            cast(Any, StartingReplica([])),
            cast(Any, RecordingApplier()),
            cast(Any, FullStore()),
            PEERS4,
            hooks,
            executor,
        )
        with pytest.raises(StorageWriteError):
            await driver.start()
        await driver.stop()
    assert driver.suspended is FULL and driver.fatal is None
    assert sent == [] and reported == []


async def test_refusals_with_a_sender_and_evidence_are_blamed_on_the_validator() -> None:
    """``Rejected`` of a known other validator and ``Evidence`` reach ``hooks.blame``
    (the daemon's peer scoring); a refusal without a sender (-1), or naming us or
    no validator, does not; a blame hook that raises does not stop consensus."""
    prepare = Prepare(0, 1, bytes(32), 3, bytes(64))
    other = Prepare(0, 1, b"\1" * 32, 3, bytes(64))
    replica = QueueReplica(
        [
            [
                Rejected(2, "bad-new-view: view change from 1 badly signed"),
                Rejected(-1, "request-too-large"),
                Rejected(0, "bad-signature"),
                Rejected(9, "bad-signature"),
                Evidence(3, prepare, other),
                Rejected(1, "boom"),
            ],
            [Broadcast(prepare)],
        ]
    )
    blamed: list[tuple[bytes, str]] = []
    sent: list[bytes] = []

    def blame(validator: bytes, reason: str) -> None:
        blamed.append((validator, reason))
        if reason == "boom":
            raise RuntimeError("scoring bug")

    def send(peer: bytes, _frame: bytes) -> bool:
        sent.append(peer)
        return True

    async with running_driver(replica, peers=PEERS4, send=send, blame=blame) as driver:
        driver.submit_message(cast(Any, SimpleNamespace()))
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 3, "the broadcast after the refusals", driver)
    assert driver.fatal is None
    assert blamed == [
        (PEERS4[2], "bad-new-view: view change from 1 badly signed"),
        (PEERS4[3], "equivocation"),
        (PEERS4[1], "boom"),
    ]
