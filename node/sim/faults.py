"""A scenario's scheduled faults, and the message drops in force.

``Faults.schedule`` puts every fault of the scenario on the event queue: a
crash and its restart (carried out by the engine), a partition and its heal
(on the network model), a drop fault and its end. ``Faults.link`` is what
every sender asks for the delays of one message: the network's, or while a
drop fault is in force, ones that lose the messages it names on the links
it cuts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from node.sim.events import EventQueue
from node.sim.network import Network
from node.sim.scenario import Fault, droppable_messages

Delays = Callable[[int, int], tuple[int, ...]]


class Faults:
    """The drop faults in force on an ``n``-node ``network``."""

    __slots__ = ("_cut", "_drops", "n", "network")

    def __init__(self, n: int, network: Network) -> None:
        self.n = n
        self.network = network
        # drop faults in force; _cut[src][dst]: message names lost on that link
        self._drops: list[Fault] = []
        self._cut: list[list[frozenset[str]]] | None = None

    def schedule(
        self,
        faults: Sequence[Fault],
        queue: EventQueue,
        crash: Callable[[int], None],
        restart: Callable[[int], None],
    ) -> None:
        """Each fault's start and (if it has one) its end, in the scenario's order."""
        call_at = queue.call_at
        for f in faults:
            if f.kind == "crash":
                node = f.node
                call_at(f.at_ms, partial(crash, node))
                if f.end_ms is not None:
                    call_at(f.end_ms, partial(restart, node))
            elif f.kind == "drop":
                call_at(f.at_ms, partial(self.set_drop, f, True))
                if f.end_ms is not None:
                    call_at(f.end_ms, partial(self.set_drop, f, False))
            else:
                groups = f.groups
                call_at(f.at_ms, partial(self.network.partition, groups))
                if f.end_ms is not None:
                    call_at(f.end_ms, self.network.heal)

    def set_drop(self, fault: Fault, on: bool) -> None:
        """The drop ``fault`` starts (``on``) or ends."""
        if on:
            self._drops.append(fault)
        else:
            self._drops.remove(fault)
        if not self._drops:
            self._cut = None
            return
        n = self.n
        cut: list[list[set[str]]] = [[set() for _ in range(n)] for _ in range(n)]
        for f in self._drops:
            names = f.messages or droppable_messages()
            for src in f.src or range(n):
                for dst in f.dst or range(n):
                    cut[src][dst].update(names)
        self._cut = [[frozenset(x) for x in row] for row in cut]

    def link(self, name: str) -> Delays:
        """``network.delays``, or while a drop fault is in force one that loses
        messages called ``name`` on the links it cuts."""
        cut = self._cut
        delays = self.network.delays
        if cut is None:
            return delays

        def cut_delays(src: int, dst: int) -> tuple[int, ...]:
            return () if name in cut[src][dst] else delays(src, dst)

        return cut_delays
