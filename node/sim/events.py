"""The simulator's event queue: one heap keyed ``(virtual ms, sequence number)``.

Ties in time are broken by the order in which events were pushed (the sequence
number), so a run depends on nothing but its scenario and seed. An event is
``(at, seq, kind, node, payload)``; the kinds below say what its payload is,
and the engine's loop (node/sim/engine.py) dispatches on them.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

# event kinds
MSG, TIMER, REQUEST, CALL, SYNC_REQ, SYNC_RESP, STATUS, WRITTEN = range(8)

Event = tuple[int, int, int, int, object]


class EventQueue:
    """The pending events of one run, earliest first."""

    __slots__ = ("heap", "seq")

    def __init__(self) -> None:
        self.heap: list[Event] = []
        self.seq = itertools.count()

    def push(self, at: int, kind: int, node: int, payload: object) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), kind, node, payload))

    def call_at(self, at: int, fn: Callable[[], None]) -> None:
        """``fn()`` at virtual time ``at``."""
        self.push(at, CALL, -1, fn)
