"""The daemon's consensus driver (``node.driver.ConsensusDriver``) in an event loop.

The replica is scripted and the block applier only records the order of the
blocks it is asked to apply (refusing a gap, as ``node.applier.BlockApplier``
does), so these tests pin the driver's own contract: blocks are applied in the
order the replica listed them, and the actions ``Replica.on_executed`` returns
run after the rest of the list that delivered the block (the order the
simulator's engine uses: ``docs/simulator.md``).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

from consensus.actions import Action, Deliver
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
