"""Ports for functional tests: ``reserve_base_port``, the one way a test gets free ports.

Ports come from 20000-31999 (below the kernel's ephemeral range), in slots
derived from ``PYTEST_XDIST_WORKER`` (one lane per worker), the process id and
a per-process counter; every port of a slot is checked free and then held
(``PortBlock``) by this process until ``release()``, so that no parallel run
can take it, even while a node is down (``HeldPorts`` of tests/support/ports.py
says how a port is held while the node's own listener can still use it).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from node.setup import testnet
from tests.functional.framework.waiting import FrameworkError
from tests.support.ports import HeldPorts

PORT_LOW = 20000
PORT_HIGH = 32000  # Linux hands out ephemeral ports from 32768 by default
LANES = 16  # xdist workers gwN use slots with slot % LANES == N % LANES

_counter = itertools.count()


def _ephemeral_low() -> int:
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class PortBlock:
    """The ports of one testnet, whose base port is ``base``, held (``HeldPorts``) by
    this process until ``release()``."""

    base: int
    held: HeldPorts

    def release(self) -> None:
        self.held.release()


def _worker_lane() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = worker.removeprefix("gw")
    return int(digits) % LANES if digits.isdigit() else 0


def reserve_base_port(validators: int) -> PortBlock:
    """Reserve a base port P whose testnet ports (``node.setup.testnet.node_ports``) are free.

    Slots of ``PORT_STRIDE * validators`` ports in ``PORT_LOW``..``PORT_HIGH``
    (kept below the kernel's ephemeral range when it allows); xdist worker gwN
    only uses slots in lane N % LANES, starting from a slot derived from the
    process id and a per-process counter.
    """
    stride = testnet.PORT_STRIDE * validators
    high = min(PORT_HIGH, _ephemeral_low())
    if high - PORT_LOW < LANES * stride:
        high = PORT_HIGH  # a low ephemeral range: overlap it, reservations still hold
    slots = (high - PORT_LOW) // stride
    lane_slots = list(range(_worker_lane(), slots, LANES))
    start = (os.getpid() * 7919 + next(_counter) * 104729) % len(lane_slots)
    for k in range(len(lane_slots)):
        base = PORT_LOW + lane_slots[(start + k) % len(lane_slots)] * stride
        ports = [p for i in range(validators) for p in testnet.node_ports(base, i)]
        held = HeldPorts.exactly(ports)
        if held is not None:
            return PortBlock(base, held)
    raise FrameworkError(f"no free block of {stride} ports in {PORT_LOW}..{high}")
