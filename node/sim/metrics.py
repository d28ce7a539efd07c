"""Counters a simulation run keeps for its report (integers only).

Messages are counted per type at the moment they are sent (a broadcast to
k peers counts k), whether or not the network then delivers them; a message
whose frame exceeds ``max_frame_bytes`` is counted in ``sent`` and again in
``oversized`` (and ``oversized_honest`` when an honest node made it). Commit
latency is virtual ms from a transaction's arrival at the clients to the first
honest commit of the block holding it.
"""

from __future__ import annotations

import re
from typing import get_args

from consensus.messages import Message


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# every type of the Message union, named in snake case (PrePrepare: pre_prepare),
# so a message type added to consensus/messages.py is counted without an edit here
MESSAGE_NAMES: dict[type, str] = {t: _snake(t.__name__) for t in get_args(Message)}
SYNC_REQUEST = "sync_request"
SYNC_RESPONSE = "sync_response"
# the daemon's StatusFrame (height announcements of node/net/sync.py), when modelled
STATUS_FRAME = "status_frame"


class Metrics:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.latencies: list[int] = []
        self.txs_submitted = 0
        self.txs_committed = 0
        self.view_changes = 0
        self.evidence = 0
        self.rejected: dict[str, int] = {}
        # messages dropped because their frame exceeded max_frame_bytes, by name
        # (each destination counts, like ``sent``); of them, those honest nodes made
        self.oversized: dict[str, int] = {}
        self.oversized_honest: dict[str, int] = {}
        # the largest frame an honest node sent (or tried to), by message name
        self.largest_frame: dict[str, int] = {}
        # sync requests the modelled StatusFrame sync started (status_sync)
        self.status_syncs = 0
        # crashes that caught a node's write in flight, and the messages that waited
        # for those writes and were never sent (not in the report)
        self.crashes_in_write = 0
        self.unsent_on_crash = 0

    def count(self, name: str, k: int = 1) -> None:
        self.sent[name] = self.sent.get(name, 0) + k

    def drop_oversized(self, name: str, honest: bool, k: int = 1) -> None:
        self.oversized[name] = self.oversized.get(name, 0) + k
        if honest:
            self.oversized_honest[name] = self.oversized_honest.get(name, 0) + k

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


def percentile(sorted_values: list[int], pct: int) -> int | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, -(-pct * len(sorted_values) // 100))
    return sorted_values[rank - 1]


def decimal(num: int, den: int, places: int = 3) -> str:
    """``num / den`` as a decimal string rounded half up, computed on integers."""
    if den == 0:
        return "0"
    scale = 10**places
    q = (2 * num * scale + den) // (2 * den)
    whole, frac = divmod(q, scale)
    return f"{whole}.{frac:0{places}d}" if places else str(whole)
