"""Clock faults for real node processes: a wall-clock offset per node, changed while it runs.

Each node of a chaos run starts under libfaketime (``env_for(i)``) reading its
offset from a file of its own (``FAKETIME_TIMESTAMP_FILE``, re-read at most
once a second: ``FAKETIME_CACHE_DURATION=1``). ``set_offset(i, s)`` rewrites
the file (atomically: libfaketime never reads half a line), so the nemesis can

* step a clock forward or backward by seconds to minutes (``clock-skew``: the
  offset at the start of the window, back to 0 at its end; a positive offset
  therefore ends with the clock stepping *backwards*),
* make it drift (``clock-drift``: the offset grows by ``percent`` of the time
  elapsed in the window, in whole-second steps, then steps back to 0),

without restarting the node. Only the wall clock moves (``DONT_FAKE_MONOTONIC``):
the node's timers run on the monotonic clock, as on a host whose NTP is
wrong. The offset is a whole number of seconds, libfaketime's ``+N``/``-N``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.functional.framework.node import faketime_library


class ClockControl:
    """One libfaketime offset file per node, under ``directory``."""

    def __init__(self, directory: Path, nodes: int) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._offsets = dict.fromkeys(range(nodes), 0)
        for i in range(nodes):
            self.set_offset(i, 0)

    def path(self, i: int) -> Path:
        return self.directory / f"node{i}.faketime"

    def env_for(self, i: int) -> dict[str, str]:
        """The environment that makes node ``i`` read its wall clock through its file."""
        return {
            "LD_PRELOAD": faketime_library(),
            "FAKETIME_TIMESTAMP_FILE": str(self.path(i)),
            "FAKETIME_CACHE_DURATION": "1",
            "DONT_FAKE_MONOTONIC": "1",
        }

    def offset(self, i: int) -> int:
        return self._offsets[i]

    def set_offset(self, i: int, seconds: int) -> None:
        """From within a second on, node ``i``'s wall clock is ``seconds`` off the host's."""
        target = self.path(i)
        scratch = target.with_suffix(".tmp")
        scratch.write_text(f"{seconds:+d}\n", encoding="ascii")
        os.replace(scratch, target)
        self._offsets[i] = seconds
