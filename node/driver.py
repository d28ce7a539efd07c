"""Drives the sans-IO replica inside the daemon: one input at a time, actions in order.

Inputs (consensus messages, client requests, timer firings, synced blocks)
go through one queue and one task, so the replica never sees two inputs at
once and each input's actions are carried out completely before the next:

- ``Persist``: a synced LevelDB batch in the storage thread, awaited before
  anything later in the list is sent (votes are durable before they leave);
- ``Send``/``Broadcast``: encoded once, handed to the transport's per-peer queues;
- ``Deliver``: the block applier executes and writes the block (synced), then
  ``on_executed`` feeds the state root back and its actions run too;
- ``Relay``: overdue client requests handed to the primary as gossip;
- ``SetTimer``: one asyncio timer, replaced on every new deadline;
- ``NeedSync``, ``Evidence``, ``Divergence``, ``ViewChanged``, ``Rejected``:
  handed to callbacks (sync manager, logs, metrics).

Messages sent, refusals, view changes and evidence are counted in ``stats``
(the admin ``/consensus``) and told to the hooks' ``observer`` as they happen
(the node's Prometheus counters).

Time is the wall clock in integer milliseconds (block timestamps are wall
time), read in one place: ``clock``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

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
from consensus.messages import CommittedBlock, Message
from consensus.replica import Replica
from node.applier import BlockApplier
from node.block import Block
from node.ledger.executor import BlockOutcome
from node.wire import ConsensusFrame, TxsFrame, encode_frame
from storage.base import ChainStorage

log = structlog.get_logger("hygeia.consensus")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DriverStats:
    messages_out: dict[str, int] = field(default_factory=dict)
    messages_in: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    evidence: int = 0
    view_changes: int = 0
    last_view_change: dict[str, Any] = field(default_factory=dict)
    divergence: list[dict[str, Any]] = field(default_factory=list)


class DriverObserver(Protocol):
    """Told of consensus events as they happen (``node.metrics.NodeMetrics``)."""

    def message_out(self, kind: str, copies: int) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def view_changed(self, view: int, cause: str) -> None: ...
    def equivocation(self, validator: int, kind: str) -> None: ...


class NullObserver:
    """A ``DriverObserver`` that ignores everything."""

    def message_out(self, kind: str, copies: int) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass

    def view_changed(self, view: int, cause: str) -> None:
        pass

    def equivocation(self, validator: int, kind: str) -> None:
        pass


@dataclass
class DriverHooks:
    send: Callable[[bytes, bytes], bool]
    on_block: Callable[[Block, BlockOutcome], None]
    on_need_sync: Callable[[int, Sequence[int]], None]
    observer: DriverObserver = field(default_factory=NullObserver)


_Input = tuple[str, Any]


class ConsensusDriver:
    def __init__(
        self,
        replica: Replica,
        applier: BlockApplier,
        store: ChainStorage,
        validator_ids: Sequence[bytes],
        hooks: DriverHooks,
        storage_executor: Executor,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.replica = replica
        self.applier = applier
        self.store = store
        self.validator_ids = list(validator_ids)
        self.hooks = hooks
        self.stats = DriverStats()
        self._executor = storage_executor
        self._clock = clock
        self._inputs: asyncio.Queue[_Input] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.fatal: BaseException | None = None

    # -------------------------------------------------------------- inputs
    def submit_message(self, msg: Message) -> None:
        name = type(msg).__name__
        self.stats.messages_in[name] = self.stats.messages_in.get(name, 0) + 1
        self._inputs.put_nowait(("msg", msg))

    def submit_request(self, wire: bytes) -> None:
        self._inputs.put_nowait(("req", wire))

    def submit_block(self, block: CommittedBlock) -> None:
        self._inputs.put_nowait(("block", block))

    @property
    def backlog(self) -> int:
        return self._inputs.qsize()

    # ---------------------------------------------------------- lifecycle
    async def start(self) -> None:
        actions = self.replica.start(self._clock())
        await self._run(actions)
        self._task = asyncio.create_task(self._loop(), name="consensus-driver")

    async def stop(self) -> None:
        """Finish the input being processed (a block being written), then stop."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._inputs.put_nowait(("stop", None))
            await self._task

    async def _loop(self) -> None:
        while True:
            kind, payload = await self._inputs.get()
            if kind == "stop" or self._stopping:
                return
            now = self._clock()
            try:
                if kind == "msg":
                    actions = self.replica.on_message(payload, now)
                elif kind == "req":
                    actions = self.replica.on_request(payload, now)
                elif kind == "timer":
                    actions = self.replica.on_timer(now)
                else:
                    actions = self.replica.on_committed_block(payload, now)
                await self._run(actions)
            except Exception as exc:  # a bug or a storage failure: stop, never skip a block
                log.exception("consensus driver failed; stopping the node", error=str(exc))
                self.fatal = exc
                return

    # ------------------------------------------------------------ actions
    async def _run(self, actions: Sequence[Action]) -> None:
        """Carry out ``actions`` in order. What ``on_executed`` returns after a
        delivery goes to the END of the queue: blocks already listed are applied
        first, so heights stay in order whatever the replica adds."""
        loop = asyncio.get_running_loop()
        queue = deque(actions)
        while queue:
            action = queue.popleft()
            if isinstance(action, Persist):
                await loop.run_in_executor(
                    self._executor, self.store.persist_consensus, action.records
                )
            elif isinstance(action, Send):
                self._send(action.to, action.message)
            elif isinstance(action, Broadcast):
                frame = encode_frame(ConsensusFrame(action.message))
                self._count_out(action.message, len(self.validator_ids) - 1)
                for i, peer in enumerate(self.validator_ids):
                    if i != self.replica.me:
                        self.hooks.send(peer, frame)
            elif isinstance(action, Deliver):
                block, outcome = await loop.run_in_executor(
                    self._executor, self.applier.apply, action.block
                )
                self.hooks.on_block(block, outcome)
                queue.extend(
                    self.replica.on_executed(block.height, outcome.state_root, self._clock())
                )
            elif isinstance(action, Relay):
                if 0 <= action.to < len(self.validator_ids) and action.requests:
                    frame = encode_frame(TxsFrame(list(action.requests)))
                    self.hooks.send(self.validator_ids[action.to], frame)
            elif isinstance(action, SetTimer):
                self._arm(action.at)
            elif isinstance(action, NeedSync):
                self.hooks.on_need_sync(action.target_height, action.hints)
            elif isinstance(action, Rejected):
                self.stats.rejected[action.reason] = self.stats.rejected.get(action.reason, 0) + 1
                self.hooks.observer.rejected(action.reason)
                log.debug("consensus input rejected", sender=action.sender, reason=action.reason)
            elif isinstance(action, ViewChanged):
                self.stats.view_changes += 1
                self.stats.last_view_change = {"view": action.view, "cause": action.cause}
                self.hooks.observer.view_changed(action.view, action.cause)
                log.info("view changed", view=action.view, cause=action.cause)
            elif isinstance(action, Evidence):
                self.stats.evidence += 1
                self.hooks.observer.equivocation(action.validator, type(action.first).__name__)
                log.warning(
                    "equivocation evidence",
                    validator=action.validator,
                    kind=type(action.first).__name__,
                )
            elif isinstance(action, Divergence):
                self.stats.divergence.append(
                    {
                        "height": action.height,
                        "ours": action.ours.hex(),
                        "stable": action.stable.hex(),
                    }
                )
                log.error(
                    "DIVERGENT EXECUTION: our state root differs from the stable checkpoint",
                    height=action.height,
                    ours=action.ours.hex(),
                    stable=action.stable.hex(),
                )

    def _send(self, to: int, msg: Message) -> None:
        if 0 <= to < len(self.validator_ids) and to != self.replica.me:
            self._count_out(msg, 1)
            self.hooks.send(self.validator_ids[to], encode_frame(ConsensusFrame(msg)))

    def _count_out(self, msg: Message, copies: int) -> None:
        name = type(msg).__name__
        self.stats.messages_out[name] = self.stats.messages_out.get(name, 0) + copies
        self.hooks.observer.message_out(name, copies)

    def _arm(self, at: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0, at - self._clock()) / 1000
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._inputs.put_nowait, ("timer", None))
