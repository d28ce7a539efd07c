"""The daemon's consensus driver (``node.driver.ConsensusDriver``) in an event loop.

The replica is scripted and the block applier only records the order of the
blocks it is asked to apply (refusing a gap, as ``node.applier.BlockApplier``
does), so these tests pin the driver's own contract: blocks are applied in the
order the replica listed them, and the actions ``Replica.on_executed`` returns
run after the rest of the list that delivered the block (the order the
simulator's engine uses: ``docs/simulator.md``); the ``Persist`` records of
the inputs waiting together are written in one synced batch before any
message that follows them leaves; a block being applied does not hold up
the votes for later heights.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

from consensus.actions import Action, Deliver, Persist, Relay
from node.applier import ApplyError
from node.driver import ConsensusDriver, DriverHooks


class ScriptedReplica:
    """Answers ``on_message`` with a fixed action list and ``on_executed(h)`` from a table."""

    me = 0
    view = 0

    def __init__(self, on_message: list[Action], after: dict[int, list[Action]]) -> None:
        self._on_message = on_message
        self._after = after

    def start(self, now: int) -> list[Action]:
        return []

    def on_message(self, msg: Any, now: int) -> list[Action]:
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


async def test_blocks_listed_before_on_executed_actions_are_applied_first() -> None:
    """A list [Deliver 1, Deliver 2] whose on_executed(1) adds [Deliver 3] (what a
    replica that is catching up does when height 1 makes a checkpoint stable and a
    replayed commit completes height 3) is applied as 1, 2, 3 and the driver goes on."""
    replica = ScriptedReplica([_deliver(1), _deliver(2)], after={1: [_deliver(3)]})
    applier = RecordingApplier()
    blocks: list[int] = []
    hooks = DriverHooks(
        send=lambda _peer, _frame: True,
        on_block=lambda block, _outcome: blocks.append(block.height),
        on_need_sync=lambda _target, _hints: None,
    )
    with ThreadPoolExecutor(1) as executor:
        driver = ConsensusDriver(
            cast(Any, replica),
            cast(Any, applier),
            cast(Any, SimpleNamespace()),
            [bytes(32)],
            hooks,
            executor,
        )
        await driver.start()
        driver.submit_message(cast(Any, SimpleNamespace()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while len(applier.order) < 3 and driver.fatal is None:
            assert loop.time() < deadline, f"driver stalled; applied so far {applier.order}"
            await asyncio.sleep(0.01)
        await driver.stop()
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

    def on_message(self, msg: Any, now: int) -> list[Action]:
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


async def _wait(cond: Any, what: str, driver: ConsensusDriver) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not cond():
        assert driver.fatal is None, f"driver stopped: {driver.fatal!r}"
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


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

    hooks = DriverHooks(
        send=send,
        on_block=lambda _block, _outcome: None,
        on_need_sync=lambda _target, _hints: None,
    )
    with ThreadPoolExecutor(1) as executor:
        driver = ConsensusDriver(
            cast(Any, replica),
            cast(Any, RecordingApplier()),
            cast(Any, store),
            PEERS,
            hooks,
            executor,
        )
        await driver.start()
        driver.submit_message(cast(Any, SimpleNamespace()))
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 2, "both messages", driver)
        await driver.stop()
    assert store.batches == [[(b"slot/1", b"b"), (b"view", b"v")]]
    assert b"first" in sent[0][0] and b"second" in sent[1][0]
    for _frame, durable in sent:
        assert durable == {b"slot/1": b"b", b"view": b"v"}, "a message left before its record"


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

    hooks = DriverHooks(
        send=send,
        on_block=lambda block, _outcome: blocks.append(block.height),
        on_need_sync=lambda _target, _hints: None,
    )
    with ThreadPoolExecutor(1) as executor:
        driver = ConsensusDriver(
            cast(Any, replica), cast(Any, SlowApplier()), cast(Any, store), PEERS, hooks, executor
        )
        await driver.start()
        driver.submit_message(cast(Any, SimpleNamespace()))
        await asyncio.sleep(0)  # the first round hands block 1 to the apply task
        driver.submit_message(cast(Any, SimpleNamespace()))
        await _wait(lambda: len(sent) == 1, "the message after the block", driver)
        assert blocks == [] and replica.executed == []
        release.set()
        await _wait(lambda: replica.executed == [1], "on_executed(1)", driver)
        await driver.stop()
    assert blocks == [1]
