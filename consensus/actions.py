"""What a replica asks its driver to do, in order.

Every entry point of the replica returns a list of actions. The driver carries
them out in list order; a ``Persist`` must be durable before any later
``Send``/``Broadcast`` of the same list leaves the process. That is how
"votes are persisted before they are sent" holds whatever the driver.

Validators are named by their index in one epoch's set (consensus/epochs.py).
The actions that name one (``Send``, ``Broadcast``, ``Relay``, ``NeedSync``,
``Evidence``, ``Rejected``) carry that ``epoch``; a replica leaves it 0 and
whatever drives replicas across epochs (``node.engine.epoch_switch``) stamps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import CommittedBlock, Message


@dataclass(frozen=True, slots=True)
class Persist:
    """Upserts to the replica's durable record store; ``None`` deletes the key."""

    records: tuple[tuple[bytes, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class Send:
    to: int
    message: Message
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send to every other validator."""

    message: Message
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Relay:
    """Hand these client requests to validator ``to`` (the primary), which may
    never have received them; sent before a request timeout blames it."""

    to: int
    requests: tuple[bytes, ...]
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Deliver:
    """A committed block, in strict height order. The driver executes it and
    answers with ``Replica.on_executed(height, state_root, now)``."""

    block: CommittedBlock


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Call ``Replica.on_timer(now)`` at or after ``at`` (replaces the previous one)."""

    at: int


@dataclass(frozen=True, slots=True)
class NeedSync:
    """The replica is behind: fetch committed blocks up to ``target_height``
    (from ``hints``, validators that claim to have them) and feed them to
    ``Replica.on_committed_block``."""

    target_height: int
    hints: tuple[int, ...]
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Evidence:
    """Two conflicting signed messages from one validator for one height and view."""

    validator: int
    first: Message
    second: Message
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class Divergence:
    """Our app-state root differs from a stable checkpoint's: execution diverged."""

    height: int
    ours: bytes
    stable: bytes


@dataclass(frozen=True, slots=True)
class ViewChanged:
    """Informational: the replica entered ``view`` (``cause`` says why)."""

    view: int
    cause: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """Informational: an input was refused (``reason`` is a short stable code)."""

    sender: int
    reason: str
    epoch: int = 0


Action = (
    Persist
    | Send
    | Broadcast
    | Relay
    | Deliver
    | SetTimer
    | NeedSync
    | Evidence
    | Divergence
    | ViewChanged
    | Rejected
)
