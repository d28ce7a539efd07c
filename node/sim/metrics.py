"""Counters a simulation run keeps for its report (integers only).

Messages are counted per type at the moment they are sent (a broadcast to
k peers counts k), whether or not the network then delivers them. Commit
latency is virtual ms from a transaction's arrival at the clients to the first
honest commit of the block holding it.
"""

from __future__ import annotations

from consensus.messages import (
    Checkpoint,
    Commit,
    NewView,
    NewViewRequest,
    PayloadReply,
    PayloadRequest,
    Prepare,
    PrePrepare,
    Status,
    ViewChange,
)

MESSAGE_NAMES: dict[type, str] = {
    PrePrepare: "pre_prepare",
    Prepare: "prepare",
    Commit: "commit",
    Checkpoint: "checkpoint",
    ViewChange: "view_change",
    NewView: "new_view",
    NewViewRequest: "new_view_request",
    Status: "status",
    PayloadRequest: "payload_request",
    PayloadReply: "payload_reply",
}
SYNC_REQUEST = "sync_request"
SYNC_RESPONSE = "sync_response"


class Metrics:
    def __init__(self) -> None:
        self.sent: dict[str, int] = {}
        self.latencies: list[int] = []
        self.txs_submitted = 0
        self.txs_committed = 0
        self.view_changes = 0
        self.evidence = 0
        self.rejected: dict[str, int] = {}

    def count(self, name: str, k: int = 1) -> None:
        self.sent[name] = self.sent.get(name, 0) + k

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
