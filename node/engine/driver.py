"""Drives the sans-IO replica inside the daemon: the driver's core with IO at its edges.

What to do with the replica's inputs and actions is decided by the driver's
core (``node.engine.core``, shared with the simulator): inputs (consensus
messages, client requests, timer firings, synced blocks, executed blocks) go
through one queue and one task, so the replica never sees two inputs at once;
the task takes every input already waiting (up to ``MAX_INPUTS_PER_ROUND``),
hands them to the replica one by one and carries out all the actions they
produced as one *round*, in the core's order. This module is the edges:

- the round's write: the records of every ``Persist`` in ONE synced LevelDB
  batch (group commit), written in the storage thread before any message
  that followed a ``Persist`` is sent: a vote is durable before it leaves, as
  the replica requires, but a busy node pays one fsync per round instead of
  one per input;
- ``transmit`` (``Send``/``Broadcast``/``Relay``): encoded once and handed to
  the transport's per-peer queues. Sending never stops consensus: a message
  whose frame is over ``hooks.max_frame_bytes`` is not sent (``too_large``),
  and an exception while encoding or handing over one message drops that
  message (``send_error``); both are counted (the observer's ``dropped``)
  and logged as a warning at the 1st, 2nd, 4th, 8th...
  drop of a reason. Relayed requests go in as many ``TxsFrame``s as the limit
  needs;
- ``execute`` (``Deliver``, after the round's write): the block goes to the
  apply task, which executes and writes blocks one at a time in height order
  (one synced batch each) while the replica goes on voting for later heights;
  after each block, ``on_block`` runs and ``on_executed`` comes back to the
  replica as an input;
- ``arm_timer`` (``SetTimer``): one asyncio timer, replaced on every new deadline;
- ``need_sync`` and ``note`` (``NeedSync``, ``Evidence``, ``Divergence``,
  ``ViewChanged``, ``Rejected``): handed to callbacks (sync manager, logs,
  metrics). A ``Rejected`` with a sender (not -1) and an ``Evidence`` also go
  to ``hooks.blame(key, reason)``, the validator's node key (reason ``equivocation`` for
  evidence): the daemon scores the validator's peer link with them
  (``node.net.penalties.consensus_points``).

A write that fails (``storage.errors.StorageWriteError``: the disk is full,
the filesystem refused it), of a round's ``Persist`` or of a block, *suspends*
the driver (``suspended``, ``_suspend``): nothing that waited for the write is
carried out (a vote that could not be persisted is never sent), no later
input reaches the replica (inputs are dropped, the timer is cancelled, blocks
waiting to be applied are dropped), and ``hooks.on_storage_failure`` is told.
The process goes on: ``node.engine.storage_recovery`` retries the storage and,
once it writes again, the daemon starts a fresh replica and driver from what
was persisted, as a restart would. Any other failure of the replica (a bug) or
of storage (corruption, a block that cannot be applied) stops consensus
(``fatal``, ``_fail``) and the node.

Messages received and sent, refusals, view changes and evidence are counted in ``stats``
(the admin ``/consensus``) and told to the hooks' ``observer`` as they happen
(the node's Prometheus counters).

Time is the wall clock in integer milliseconds (block timestamps are wall
time), read in one place: ``clock``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from consensus.actions import (
    Action,
    Divergence,
    Evidence,
    Rejected,
    Relay,
    Send,
    ViewChanged,
)
from consensus.messages import CommittedBlock, Message
from node.core.block import Block
from node.engine.applier import BlockApplier
from node.engine.core import (
    MAX_INPUTS_PER_ROUND,
    Input,
    Note,
    OnBlock,
    OnExecuted,
    OnMessage,
    OnRequest,
    OnTimer,
    Outbound,
    ReplicaInputs,
    carry_out,
    feed,
    plan,
)
from node.engine.proof_archive import stable_archive
from node.ledger.executor import BlockOutcome
from node.net.wire import ConsensusFrame, encode_frame, txs_frames
from storage.base import ChainStorage, Write
from storage.errors import StorageWriteError

log = structlog.get_logger("hygeia.consensus")

# requests per relayed TxsFrame (as gossip)
RELAY_BATCH = 256


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DriverStats:
    """What the driver keeps beyond the counts, which go to its observer only
    (``node.ops.consensus_counts.ConsensusCounts``, read by /consensus and /metrics)."""

    divergence: list[dict[str, Any]] = field(default_factory=list)


class DriverObserver(Protocol):
    """Told of consensus events as they happen (``node.ops.metrics.NodeMetrics``)."""

    def message_in(self, kind: str) -> None: ...
    def message_out(self, kind: str, copies: int) -> None: ...
    def dropped(self, kind: str, reason: str, copies: int) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def view_changed(self, view: int, cause: str) -> None: ...
    def equivocation(self, validator: int, kind: str) -> None: ...


class NullObserver:
    """A ``DriverObserver`` that ignores everything."""

    def message_in(self, kind: str) -> None:
        pass

    def message_out(self, kind: str, copies: int) -> None:
        pass

    def dropped(self, kind: str, reason: str, copies: int) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass

    def view_changed(self, view: int, cause: str) -> None:
        pass

    def equivocation(self, validator: int, kind: str) -> None:
        pass


class DrivenReplica(ReplicaInputs, Protocol):
    """What the driver drives: the replica's entry points (a ``Replica``, or the
    ``EpochSwitch`` that holds one per epoch) and its current view."""

    @property
    def view(self) -> int: ...

    def start(self, now: int) -> Sequence[Action]: ...


class PeerBook(Protocol):
    """Who a replica's validator indices are: the node keys of one epoch's set
    (``node.engine.epoch_switch.EpochSwitch`` across epochs, ``StaticPeers`` for one)."""

    def key_of(self, epoch: int, index: int) -> bytes | None:
        """Validator ``index`` of ``epoch``, None for no such validator or ourselves."""
        ...

    def others(self, epoch: int) -> list[bytes]:
        """Every validator of ``epoch`` but ourselves."""
        ...


class StaticPeers:
    """One validator set for good, and our index in it."""

    def __init__(self, validator_ids: Sequence[bytes], me: int | None) -> None:
        self._ids = list(validator_ids)
        self._me = me

    def key_of(self, epoch: int, index: int) -> bytes | None:
        if epoch != 0 or not 0 <= index < len(self._ids) or index == self._me:
            return None
        return self._ids[index]

    def others(self, epoch: int) -> list[bytes]:
        return [k for i, k in enumerate(self._ids) if i != self._me] if epoch == 0 else []


def _no_blame(validator: bytes, reason: str) -> None:
    pass


def _ignore_storage_failure(exc: StorageWriteError) -> None:
    pass


@dataclass
class DriverHooks:
    send: Callable[[bytes, bytes], bool]
    on_block: Callable[[Block, BlockOutcome], None]
    on_need_sync: Callable[[int, Sequence[int]], None]
    observer: DriverObserver = field(default_factory=NullObserver)
    # the transport's frame limit: larger frames are dropped here (None: no limit)
    max_frame_bytes: int | None = None
    # a validator's message was refused (reason code) or it equivocated
    blame: Callable[[bytes, str], None] = _no_blame
    # a write failed and the driver suspended itself (node.engine.storage_recovery)
    on_storage_failure: Callable[[StorageWriteError], None] = _ignore_storage_failure


# what the input queue holds: an input of the core, or None to stop
_Queued = Input | None
_TIMER = OnTimer()


class ConsensusDriver:
    def __init__(
        self,
        replica: DrivenReplica,
        applier: BlockApplier,
        store: ChainStorage,
        peers: Sequence[bytes] | PeerBook,
        hooks: DriverHooks,
        storage_executor: Executor,
        *,
        clock: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.replica = replica
        self.applier = applier
        self.store = store
        # a list of keys: one set, our index being the replica's ``me``
        self.peer_book: PeerBook = (
            StaticPeers(peers, getattr(replica, "me", None))
            if isinstance(peers, Sequence)
            else peers
        )
        self.hooks = hooks
        self.stats = DriverStats()
        self._drops: dict[str, int] = {}
        self._executor = storage_executor
        self._clock = clock
        self._inputs: asyncio.Queue[_Queued] = asyncio.Queue()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._apply_task: asyncio.Task[None] | None = None
        self._blocks: asyncio.Queue[CommittedBlock | None] = asyncio.Queue()
        self._stopping = False
        self.fatal: BaseException | None = None
        self.suspended: StorageWriteError | None = None

    # -------------------------------------------------------------- inputs
    # (dropped once stopping or suspended: nothing reads the queue any more)
    def submit_message(self, msg: Message, epoch: int = 0) -> None:
        if self._stopping:
            return
        name = type(msg).__name__
        self.hooks.observer.message_in(name)
        self._inputs.put_nowait(OnMessage(msg, epoch))

    def submit_request(self, wire: bytes) -> None:
        if not self._stopping:
            self._inputs.put_nowait(OnRequest(wire))

    def submit_block(self, block: CommittedBlock) -> None:
        if not self._stopping:
            self._inputs.put_nowait(OnBlock(block))

    @property
    def backlog(self) -> int:
        return self._inputs.qsize()

    # ---------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Start the replica and the driver's tasks. A write that fails meanwhile
        suspends the driver (not told to ``on_storage_failure``) and is raised."""
        self._apply_task = asyncio.create_task(self._apply_loop(), name="consensus-apply")
        try:
            await self._run(self.replica.start(self._clock()))
        except StorageWriteError as exc:
            self._suspend(exc, notify=False)
            await self._apply_task
            raise
        self._task = asyncio.create_task(self._loop(), name="consensus-driver")

    async def stop(self) -> None:
        """Finish the round being carried out and the blocks already delivered
        (each written whole or not at all), then stop."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._task is not None:
            self._inputs.put_nowait(None)
            await self._task
        if self._apply_task is not None:
            self._blocks.put_nowait(None)
            await self._apply_task

    def _fail(self, exc: BaseException) -> None:
        """A bug or a storage failure: stop consensus, never skip a block."""
        log.exception("consensus driver failed; stopping the node", error=str(exc))
        if self.fatal is None:
            self.fatal = exc
        self._stopping = True
        self._inputs.put_nowait(None)
        self._blocks.put_nowait(None)

    def _suspend(self, exc: StorageWriteError, *, notify: bool = True) -> None:
        """A write failed: carry out nothing more, drop what waits, tell the hook
        (see the module docstring); the first failure only."""
        if self.suspended is not None or self.fatal is not None:
            return
        self.suspended = exc
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        self._inputs.put_nowait(None)
        self._blocks.put_nowait(None)
        log.info(
            "consensus suspended: a storage write failed",
            error=str(exc),
            backlog=self._inputs.qsize() - 1,
        )
        if notify:
            self.hooks.on_storage_failure(exc)

    async def _loop(self) -> None:
        inputs = self._inputs
        while True:
            batch = [await inputs.get()]
            while len(batch) < MAX_INPUTS_PER_ROUND and not inputs.empty():
                batch.append(inputs.get_nowait())
            actions: list[Action] = []
            stop = False
            try:
                for item in batch:
                    if item is None or self._stopping:
                        stop = True
                        break
                    actions.extend(feed(self.replica, item, self._clock()))
                await self._run(actions)
            except StorageWriteError as exc:
                self._suspend(exc)
                return
            except Exception as exc:
                self._fail(exc)
                return
            if stop:
                return

    async def _apply_loop(self) -> None:
        """Apply delivered blocks one at a time, in the order they were delivered."""
        loop = asyncio.get_running_loop()
        while True:
            committed = await self._blocks.get()
            if committed is None or self.fatal is not None or self.suspended is not None:
                return
            try:
                block, outcome = await loop.run_in_executor(
                    self._executor, self.applier.apply, committed
                )
            except StorageWriteError as exc:
                self._suspend(exc)
                return
            except Exception as exc:
                self._fail(exc)
                return
            try:
                self.hooks.on_block(block, outcome)
            except Exception as exc:
                self._fail(exc)
                return
            self._inputs.put_nowait(OnExecuted(block.height, outcome.state_root))

    # ------------------------------------------------------------ actions
    async def _run(self, actions: Sequence[Action]) -> None:
        """Carry out one round's ``actions`` in the core's order: what goes at once,
        one synced write of all its ``Persist`` records, then what waited for it."""
        if not actions:
            return
        step = plan(actions)
        for action in step.first:
            carry_out(action, self)
        if step.write is not None:
            loop = asyncio.get_running_loop()
            batch: list[Write] = list(step.write.records)
            await loop.run_in_executor(self._executor, self._persist, batch)
        for action in step.then:
            carry_out(action, self)

    def _persist(self, batch: list[Write]) -> None:
        """The round's records, then an archive copy of a new stable checkpoint
        (``node/engine/proof_archive.py``: proofs of outcome need every one)."""
        self.store.persist_consensus(batch)
        if archive := stable_archive(batch):
            self.store.put_proof_records(archive)

    # -------------------------------------------- the core's Edges (node.engine.core)
    def transmit(self, action: Outbound) -> None:
        """Hand one message to the transport; never raises (see the module docstring)."""
        if isinstance(action, Relay):
            self._relay(action)
            return
        if isinstance(action, Send):
            key = self.peer_book.key_of(action.epoch, action.to)
            if key is None:
                return
            peers = [key]
        else:
            peers = self.peer_book.others(action.epoch)
        msg = action.message
        try:
            frame = encode_frame(ConsensusFrame(msg, action.epoch))
        except Exception as exc:
            self._drop(type(msg).__name__, "send_error", len(peers), error=repr(exc))
            return
        self._send_frame(type(msg).__name__, frame, peers, count_out=True)

    def _relay(self, action: Relay) -> None:
        key = self.peer_book.key_of(action.epoch, action.to)
        if key is None or not action.requests:
            return
        limit = self.hooks.max_frame_bytes
        try:
            frames = list(
                txs_frames(
                    action.requests,
                    max_count=RELAY_BATCH,
                    max_bytes=limit if limit is not None else 1 << 62,
                )
            )
        except Exception as exc:
            self._drop("Relay", "send_error", 1, error=repr(exc))
            return
        for frame in frames:
            self._send_frame("Relay", frame, [key], count_out=False)

    def _send_frame(self, kind: str, frame: bytes, peers: list[bytes], *, count_out: bool) -> None:
        limit = self.hooks.max_frame_bytes
        if limit is not None and len(frame) > limit:
            self._drop(kind, "too_large", len(peers), size=len(frame), limit=limit)
            return
        if count_out:
            self._count_out(kind, len(peers))
        for peer in peers:
            try:
                self.hooks.send(peer, frame)
            except Exception as exc:
                self._drop(kind, "send_error", 1, error=repr(exc))

    def _drop(self, kind: str, reason: str, copies: int, **detail: Any) -> None:
        """Count (and log, at the 1st, 2nd, 4th... time of a reason) a message not sent."""
        before = self._drops.get(reason, 0)  # paces the log only; the count is the observer's
        self._drops[reason] = before + copies
        self.hooks.observer.dropped(kind, reason, copies)
        if before == 0 or before.bit_length() != (before + copies).bit_length():
            log.warning(
                "consensus message not sent",
                type=kind,
                reason=reason,
                copies=copies,
                dropped=before + copies,
                **detail,
            )

    def execute(self, block: CommittedBlock) -> None:
        """To the apply task (after the round's write), which feeds ``OnExecuted`` back."""
        if self.suspended is None:
            self._blocks.put_nowait(block)

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        self.hooks.on_need_sync(target, hints)

    def arm_timer(self, at: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self.suspended is not None:
            return
        delay = max(0, at - self._clock()) / 1000
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._inputs.put_nowait, _TIMER)

    def note(self, action: Note) -> None:
        """Informational actions: logs, metrics, blame."""
        if isinstance(action, Rejected):
            self.hooks.observer.rejected(action.reason)
            log.debug("consensus input rejected", sender=action.sender, reason=action.reason)
            self._blame(action.epoch, action.sender, action.reason)
        elif isinstance(action, ViewChanged):
            self.hooks.observer.view_changed(action.view, action.cause)
            log.info("view changed", view=action.view, cause=action.cause)
        elif isinstance(action, Evidence):
            self.hooks.observer.equivocation(action.validator, type(action.first).__name__)
            log.warning(
                "equivocation evidence",
                validator=action.validator,
                kind=type(action.first).__name__,
            )
            self._blame(action.epoch, action.validator, "equivocation")
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

    def _count_out(self, name: str, copies: int) -> None:
        self.hooks.observer.message_out(name, copies)

    def _blame(self, epoch: int, validator: int, reason: str) -> None:
        """Tell the daemon; scoring a peer must never stop consensus."""
        key = self.peer_book.key_of(epoch, validator)
        if key is None:
            return
        try:
            self.hooks.blame(key, reason)
        except Exception:
            log.exception("blaming a validator failed", validator=validator, reason=reason)
