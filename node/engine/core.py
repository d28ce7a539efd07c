"""The driver's core: what to do with the replica's inputs and actions, without IO.

Every driver of the replica runs this: the daemon's (``node.engine.driver``,
with LevelDB, sockets and the event loop at its edges), the simulator's
(``node.sim.engine``, with a simulated store, network and clock) and the
test clusters. It makes the decisions; the edges do the IO. Nothing here
reads a clock, awaits or touches a disk: time comes in as ``now``.

Inputs go to the replica one at a time, in order (``feed``). A *round* is
every input already waiting (at most ``MAX_INPUTS_PER_ROUND``): the replica
takes them one by one and all the actions they produced are carried out
together, in the order ``plan`` gives:

1. ``Round.first``, at once, in the replica's order: the messages
   (``Send``/``Broadcast``/``Relay``) listed before every ``Persist`` of the
   round, timers (``SetTimer``: each replaces the armed one), sync requests
   (``NeedSync``) and the informational actions (``Rejected``,
   ``ViewChanged``, ``Evidence``, ``Divergence``);
2. ``Round.write``: ONE ``Persist`` holding the records of every ``Persist`` of
   the round (group commit), a key written twice keeping its later value, as
   separate writes in that order would leave it. The edges write it as one
   synced batch and wait until it is durable;
3. ``Round.then``, once the batch is durable (at once when there is none):
   every message that followed a ``Persist``, in order (once one message has
   to wait, every later one waits too, so messages leave in the order the
   replica produced them), then the delivered blocks (``Deliver``), in order,
   for storage after the batch. Each block, once executed, comes back as an
   ``OnExecuted`` input of a later round.

So a vote is durable before it leaves ("votes are persisted before they are
sent", consensus/actions.py), and a busy node pays one synced write per round
instead of one per input. A crash at any instant loses what was not yet done:
a crash before the batch is durable loses the batch and everything after it;
a crash after it loses the messages and blocks not yet handed on; an
unpersisted vote never leaves.

``carry_out`` hands one action of ``first`` or ``then`` to the driver's
``Edges``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

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

# inputs handed to the replica before their actions are carried out together
MAX_INPUTS_PER_ROUND = 512

Outbound = Send | Broadcast | Relay
Note = Rejected | ViewChanged | Evidence | Divergence


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True, slots=True)
class OnMessage:
    """A consensus message from a peer, of ``epoch`` (whose set names its sender)."""

    message: Message
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class OnRequest:
    """A client request (its wire bytes)."""

    request: bytes


@dataclass(frozen=True, slots=True)
class OnTimer:
    """The replica's timer fired."""


@dataclass(frozen=True, slots=True)
class OnExecuted:
    """A delivered block was executed and stored."""

    height: int
    state_root: bytes


@dataclass(frozen=True, slots=True)
class OnBlock:
    """A committed block fetched by block sync."""

    block: CommittedBlock


Input = OnMessage | OnRequest | OnTimer | OnExecuted | OnBlock


class ReplicaInputs(Protocol):
    """The entry points of ``consensus.replica.Replica`` that take inputs."""

    def on_message(self, msg: Message, now: int, epoch: int = 0) -> Sequence[Action]: ...

    def on_request(self, request: bytes, now: int) -> Sequence[Action]: ...

    def on_timer(self, now: int) -> Sequence[Action]: ...

    def on_executed(self, height: int, state_root: bytes, now: int) -> Sequence[Action]: ...

    def on_committed_block(self, block: CommittedBlock, now: int) -> Sequence[Action]: ...


def feed(replica: ReplicaInputs, inp: Input, now: int) -> Sequence[Action]:
    """Hand one input to the replica's entry point for it; return its actions."""
    if isinstance(inp, OnMessage):
        return replica.on_message(inp.message, now, inp.epoch)
    if isinstance(inp, OnRequest):
        return replica.on_request(inp.request, now)
    if isinstance(inp, OnTimer):
        return replica.on_timer(now)
    if isinstance(inp, OnExecuted):
        return replica.on_executed(inp.height, inp.state_root, now)
    return replica.on_committed_block(inp.block, now)


# ------------------------------------------------------------------ rounds
@dataclass(frozen=True, slots=True)
class Round:
    """One round's actions in the order to carry them out (see the module docstring)."""

    first: tuple[Action, ...]
    write: Persist | None
    then: tuple[Action, ...]

    def __iter__(self) -> Iterator[Action]:
        """Every step in order, the write (if any) between ``first`` and ``then``."""
        yield from self.first
        if self.write is not None:
            yield self.write
        yield from self.then


def plan(actions: Iterable[Action]) -> Round:
    """Order a round's actions: at once, one synced batch, then what waits for it."""
    first: list[Action] = []
    records: dict[bytes, bytes | None] = {}  # key -> last value: what the batch leaves
    waiting: list[Action] = []  # messages that follow a Persist
    blocks: list[Action] = []
    for action in actions:
        if isinstance(action, Persist):
            for key, value in action.records:
                records[key] = value
        elif isinstance(action, Broadcast | Send | Relay):
            if records or waiting:
                waiting.append(action)
            else:
                first.append(action)
        elif isinstance(action, Deliver):
            blocks.append(action)
        else:
            first.append(action)
    write = Persist(tuple(records.items())) if records else None
    waiting.extend(blocks)
    return Round(tuple(first), write, tuple(waiting))


class Edges(Protocol):
    """What a driver does at its edges for the steps of a round (all but the write)."""

    def transmit(self, action: Outbound) -> None:
        """Send a message (or relay requests) to the validators it names."""

    def execute(self, block: CommittedBlock) -> None:
        """Execute and store a delivered block (in delivery order); feed back ``OnExecuted``."""

    def arm_timer(self, at: int) -> None:
        """Feed ``OnTimer`` at or after ``at`` (the replica's clock), replacing the armed timer."""

    def need_sync(self, target: int, hints: tuple[int, ...]) -> None:
        """Fetch committed blocks up to ``target`` and feed them as ``OnBlock``."""

    def note(self, action: Note) -> None:
        """An informational action: count it, log it, blame a validator."""


def carry_out(action: Action, edges: Edges) -> None:
    """Hand one step of a round (not its write) to the edges."""
    if isinstance(action, Broadcast | Send | Relay):
        edges.transmit(action)
    elif isinstance(action, SetTimer):
        edges.arm_timer(action.at)
    elif isinstance(action, Deliver):
        edges.execute(action.block)
    elif isinstance(action, NeedSync):
        edges.need_sync(action.target_height, action.hints)
    elif isinstance(action, Persist):
        raise TypeError("a Persist is written as the round's batch, not carried out")
    else:
        edges.note(action)
