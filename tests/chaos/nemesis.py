"""The nemesis of a chaos run: plays a fault schedule against a ``TestNetwork`` of real nodes.

``Nemesis.play(schedule)`` runs on the thread that made the network (node
processes must be started from it: ``tests/functional/framework/network.py``).
For each window (``tests/chaos/schedule.py``) it waits for the start, applies
the fault, records ``nemesis start`` in the history, keeps the fault going
(``tick``: resets every ``every_ms``, a drifting clock), heals it at the end
and records ``nemesis end``. A window that starts late (a restart took a
while) starts when the previous one is healed; the history has the real times.

What each kind does:

* network shapes: ``ProxyNet`` through ``net.faults`` (heal: ``heal()``);
  ``isolate-primary`` asks the running nodes who the primary is at that moment;
* ``kill``: SIGKILL at a random instant of whatever the node is doing (a block
  write, a view change, a state sync); at the end the node starts again and
  must answer (a node that cannot restart fails the run);
* ``pause``: SIGSTOP, then SIGCONT; ``restart-all``: SIGKILL every node, then
  start them all;
* ``clock-skew``/``clock-drift``: ``ClockControl`` offsets (no restart);
* ``disk-full``: the node's small disk is filled, then freed (``Disk``);
* ``byzantine``: the node is killed and started as ``tests.chaos.byzantine_node``
  with the behaviour; at the end killed and started honest again.

After the last window every fault is healed (``heal_all``), whatever happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from tests.chaos.clock import ClockControl
from tests.chaos.history import HistoryWriter
from tests.chaos.schedule import Fault, Schedule, Window
from tests.functional.framework import FrameworkError, TestNetwork

BYZANTINE_MODULE = "tests.chaos.byzantine_node"
BYZANTINE_ENV = "CHAOS_BYZANTINE"
RESTART_TIMEOUT_S = 60.0  # a killed node must answer /status again within this
TICK_S = 0.1
INJECTED_BASE = 100_000  # window numbers of ``Nemesis.inject``


class Disk(Protocol):
    """A node's small disk (``tests/chaos/disk.py``'s ``SmallDisk``)."""

    def fill(self) -> int: ...

    def free(self) -> int: ...


class Nemesis:
    def __init__(
        self,
        net: TestNetwork,
        history: HistoryWriter,
        clocks: ClockControl,
        disks: Mapping[int, Disk] | None = None,
        *,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.net = net
        self.history = history
        self.clocks = clocks
        self.disks = dict(disks or {})
        self.log = log or net.log
        self.injected: dict[str, int] = {}  # fault kind -> windows played
        self._down: set[int] = set()  # nodes this nemesis killed and has not started again
        self._byzantine: int | None = None  # the node running the Byzantine program
        self._last_reset = 0.0  # when (in its window) the running reset fault last reset
        self._next_injected = INJECTED_BASE  # window number of the next inject or holding

    # ----------------------------------------------------------------- the run
    def play(
        self, schedule: Schedule, t0: float, *, stop: Callable[[], bool] = lambda: False
    ) -> None:
        """Play ``schedule``, its times counted from ``t0`` (``time.monotonic()``)."""
        try:
            for number, window in enumerate(schedule.windows):
                if stop():
                    break
                self._wait_until(t0 + window.start)
                self._window(number, window, t0)
        finally:
            self.heal_all()

    def inject(self, fault: Fault, seconds: float) -> None:
        """Play one fault now, for ``seconds``, healed at the end (a test that times its
        faults to an event, e.g. an epoch boundary, instead of a schedule). Its window
        numbers start at ``INJECTED_BASE`` so they never meet a schedule's."""
        self._window(self._take_number(), Window(0.0, seconds, fault), time.monotonic())

    @contextmanager
    def holding(self, fault: Fault) -> Iterator[None]:
        """Start one fault now and heal it when the ``with`` block ends: for faults a
        test overlaps and ends at an event (a node kept dead until the chain has crossed
        an epoch boundary) rather than after a duration. Faults that need ticking
        (``reset``, ``clock-drift``) are refused: nothing would keep them going."""
        if fault.kind in ("reset", "clock-drift"):
            raise FrameworkError(f"{fault.kind} needs ticking: play it with inject or a schedule")
        number, text = self._take_number(), fault.text()
        self.log(f"nemesis: {text} (window {number}, held)")
        self.history.nemesis(number, "start", text)
        try:
            self.start_fault(fault)
            yield
        finally:
            self.end_fault(fault)
            self.history.nemesis(number, "end", text)
            self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
            self.log(f"nemesis: healed {text}")

    def _take_number(self) -> int:
        number, self._next_injected = self._next_injected, self._next_injected + 1
        return number

    def _window(self, number: int, window: Window, t0: float) -> None:
        fault = window.fault
        text = fault.text()
        self.log(f"nemesis: {text} (window {number}, {window.end - window.start:g}s)")
        self.history.nemesis(number, "start", text)
        started = time.monotonic()
        try:
            self.start_fault(fault)
            end = max(t0 + window.end, started + 0.5)
            while time.monotonic() < end:
                self.tick(fault, time.monotonic() - started)
                time.sleep(min(TICK_S, max(0.0, end - time.monotonic())))
        finally:
            self.end_fault(fault)
            self.history.nemesis(number, "end", text)
            self.injected[fault.kind] = self.injected.get(fault.kind, 0) + 1
            self.log(f"nemesis: healed {text}")

    @staticmethod
    def _wait_until(deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))

    # ---------------------------------------------------------------- faults
    def start_fault(self, fault: Fault) -> None:
        kind, net = fault.kind, self.net
        if kind == "partition":
            groups = fault.get_groups("groups")
            net.faults(lambda p: p.partition(groups))
        elif kind == "isolate":
            node = fault.get_int("node")
            net.faults(lambda p: p.isolate(node))
        elif kind == "isolate-primary":
            primary = self.primary()
            self.log(f"nemesis: the primary is node{primary}")
            net.faults(lambda p: p.isolate(primary))
        elif kind == "bridge":
            left, via, right = (
                fault.get_nodes("left"),
                fault.get_int("via"),
                fault.get_nodes("right"),
            )
            net.faults(lambda p: p.bridge(left, via, right))
        elif kind == "ring":
            reach = fault.get_int("reach")
            net.faults(lambda p: p.ring(reach))
        elif kind == "one-way":
            src, dst = fault.get_int("src"), fault.get_int("dst")
            net.faults(lambda p: p.one_way(src, dst))
        elif kind == "latency":
            ms, jitter = fault.get_int("ms") / 1000, fault.get_int("jitter_ms") / 1000
            net.faults(lambda p: p.latency(ms, jitter))
        elif kind == "bandwidth":
            rate = fault.get_int("bytes_per_s")
            net.faults(lambda p: p.bandwidth(rate))
        elif kind == "drip":
            nbytes, every = fault.get_int("bytes"), fault.get_int("every_ms") / 1000
            net.faults(lambda p: p.drip(nbytes, every))
        elif kind == "reset":
            self._last_reset = 0.0
        elif kind == "kill":
            for i in fault.get_nodes("nodes"):
                self._kill(i)
        elif kind == "pause":
            for i in fault.get_nodes("nodes"):
                if net.nodes[i].running:
                    net.pause(i)
        elif kind == "restart-all":
            for i in range(net.n):
                self._kill(i)
        elif kind == "clock-skew":
            for i in fault.get_nodes("nodes"):
                self.clocks.set_offset(i, fault.get_int("offset_s"))
        elif kind == "clock-drift":
            pass  # tick moves the clocks
        elif kind == "disk-full":
            node = fault.get_int("node")
            filled = self._disk(node).fill()
            self.log(f"nemesis: filled node{node}'s disk ({filled} bytes)")
        elif kind == "byzantine":
            node, behaviour = fault.get_int("node"), fault.get_str("behaviour")
            self._kill(node)
            self._start(node, module=BYZANTINE_MODULE, env={BYZANTINE_ENV: behaviour})
            self._byzantine = node
        else:
            raise FrameworkError(f"the nemesis cannot play {kind!r}")

    def tick(self, fault: Fault, elapsed: float) -> None:
        """Keep a fault going, ``elapsed`` seconds into its window."""
        if fault.kind == "reset":
            every = fault.get_int("every_ms") / 1000
            if elapsed - self._last_reset >= every:
                self._last_reset = elapsed
                nodes = fault.get_nodes("nodes")
                self.net.faults(lambda p: p.reset(nodes))
        elif fault.kind == "clock-drift":
            offset = int(elapsed * fault.get_int("percent") / 100)
            for i in fault.get_nodes("nodes"):
                if self.clocks.offset(i) != offset:
                    self.clocks.set_offset(i, offset)

    def end_fault(self, fault: Fault) -> None:
        kind, net = fault.kind, self.net
        if kind in ("kill", "restart-all"):
            self._start_down()
        elif kind == "pause":
            for i in fault.get_nodes("nodes"):
                if i in net.paused:
                    net.resume(i)
        elif kind in ("clock-skew", "clock-drift"):
            for i in fault.get_nodes("nodes"):
                self.clocks.set_offset(i, 0)
        elif kind == "disk-full":
            self._disk(fault.get_int("node")).free()
        elif kind == "byzantine":
            node = fault.get_int("node")
            self._kill(node)
            self._byzantine = None
            self._start_down()
        else:  # the network shapes; reset leaves nothing to undo but a heal does no harm
            net.faults(lambda p: p.heal())

    def heal_all(self) -> None:
        """Undo every fault, whatever state a failed window left."""
        net = self.net
        if net.proxies is not None:
            net.faults(lambda p: p.heal())
        for i in sorted(net.paused):
            if net.nodes[i].running:
                net.resume(i)
        for i in range(net.n):
            if self.clocks.offset(i) != 0:
                self.clocks.set_offset(i, 0)
        for disk in self.disks.values():
            disk.free()
        if self._byzantine is not None:
            self._kill(self._byzantine)
            self._byzantine = None
        self._start_down()

    # --------------------------------------------------------------- helpers
    def primary(self) -> int:
        """The primary named by the running node in the highest view."""
        views: list[tuple[int, int]] = []
        for i in self.net.running():
            if i in self.net.paused:
                continue
            try:
                st = self.net.status(i)
            except FrameworkError:
                continue
            views.append((int(st["view"]), int(st["primary"])))
        if not views:
            raise FrameworkError("no running node answers /status: nobody to ask who is primary")
        return max(views)[1]

    def _disk(self, node: int) -> Disk:
        disk = self.disks.get(node)
        if disk is None:
            raise FrameworkError(f"node{node} has no small disk (disk_nodes of the schedule)")
        return disk

    def _kill(self, i: int) -> None:
        net = self.net
        if i in net.paused:
            net.resume(i)
        if net.nodes[i].running:
            net.kill(i)
        self._down.add(i)

    def _start(self, i: int, *, module: str, env: Mapping[str, str]) -> None:
        self.net.start(i, module=module, env=env)
        self.net.wait_ready(i, timeout=RESTART_TIMEOUT_S)
        self._down.discard(i)

    def _start_down(self) -> None:
        down = sorted(self._down)
        for i in down:
            if not self.net.nodes[i].running:
                self.net.start(i)
        for i in down:
            self.net.wait_ready(i, timeout=RESTART_TIMEOUT_S)
        self._down.clear()
