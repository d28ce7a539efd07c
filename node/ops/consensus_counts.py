"""The consensus counters of one node, counted once and read by ``/consensus`` and ``/metrics``.

The consensus driver tells its observer of every consensus event as it happens
(``DriverObserver`` in node/engine/driver.py: a message received, sent or not
sent, an input the replica refused, a view change, equivocation evidence).
``ConsensusCounts`` is that observer's one record of them: ``NodeMetrics``
hands every event to it, the Prometheus ``hygeia_consensus_*``,
``hygeia_view_changes_total`` and ``hygeia_equivocation_evidence_total``
counters are read from it at scrape, and the admin ``GET /consensus`` shows its
``summary()``. So the two views of the node can never disagree on a number
(docs/metrics.md lists the metrics).

A ``Tally`` counts by label values and remembers when each was first counted
(a Prometheus counter child's ``_created``). Counts restart at 0 with the
process, as every counter of the node does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

Key = tuple[str, ...]
Sample = tuple[Key, int, float]  # label values, count, Unix time first counted


class Tally:
    """Counts by label values since the node started."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.counts: dict[Key, int] = {}
        self.created: dict[Key, float] = {}  # Unix time each key was first counted
        self._clock = clock

    def add(self, key: Key, n: int = 1) -> None:
        if key in self.counts:
            self.counts[key] += n
        else:
            self.counts[key] = n
            self.created[key] = self._clock()

    def total(self) -> int:
        return sum(self.counts.values())

    def by_first(self) -> dict[str, int]:
        """The counts of a one-label tally by that label's value, in first-counted order."""
        return {key[0]: n for key, n in self.counts.items()}

    def samples(self, group: Callable[[Key], Key] = lambda key: key) -> Iterator[Sample]:
        """(key, count, first counted) of every ``group(key)`` (each key by default),
        the counts of a group summed, in first-counted order."""
        merged: dict[Key, tuple[int, float]] = {}
        for key, n in self.counts.items():
            into = group(key)
            count, created = merged.get(into, (0, self.created[key]))
            merged[into] = (count + n, created)
        for key, (n, created) in merged.items():
            yield key, n, created


# distinct refusal texts /consensus lists before new ones are counted by code only
MAX_REJECTION_KEYS = 64


def reason_code(reason: str) -> str:
    """A refusal's code without the detail after ``:`` (the metric's label value)."""
    return reason.partition(":")[0].strip()


class ConsensusCounts:
    """Every consensus event of one node, counted once; a ``DriverObserver``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.messages_in = Tally(clock)  # (type,)
        self.messages_out = Tally(clock)  # (type,), one per recipient
        self.messages_dropped = Tally(clock)  # (type, reason), one per recipient
        self.messages_rejected = Tally(clock)  # (reason with its detail,)
        self.view_changes = Tally(clock)  # (cause,)
        self.equivocations = Tally(clock)  # (validator index, message type)
        self.last_view_change: dict[str, Any] = {}

    # the DriverObserver protocol (node/engine/driver.py)
    def message_in(self, kind: str) -> None:
        self.messages_in.add((kind,))

    def message_out(self, kind: str, copies: int) -> None:
        self.messages_out.add((kind,), copies)

    def dropped(self, kind: str, reason: str, copies: int) -> None:
        self.messages_dropped.add((kind, reason), copies)

    def rejected(self, reason: str) -> None:
        """Counted by the refusal's full text while fewer than ``MAX_REJECTION_KEYS``
        texts are known; a new text after that by its code alone (the detail after
        ``:`` may carry numbers a peer chooses, which must not grow memory)."""
        known = self.messages_rejected.counts
        key = reason if (reason,) in known or len(known) < MAX_REJECTION_KEYS else None
        self.messages_rejected.add((key if key is not None else reason_code(reason),))

    def view_changed(self, view: int, cause: str) -> None:
        self.view_changes.add((cause,))
        self.last_view_change = {"view": view, "cause": cause}

    def equivocation(self, validator: int, kind: str) -> None:
        self.equivocations.add((str(validator), kind))

    # ------------------------------------------------------------ reading
    def summary(self) -> dict[str, Any]:
        """The counts ``GET /consensus`` shows (``node.api.views.consensus``)."""
        return {
            "view_changes": self.view_changes.total(),
            "last_view_change": dict(self.last_view_change),
            "messages_in": self.messages_in.by_first(),
            "messages_out": self.messages_out.by_first(),
            "rejected": self.messages_rejected.by_first(),
            "evidence": self.equivocations.total(),
        }
