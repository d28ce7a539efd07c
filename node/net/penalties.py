"""Misbehaviour scores of peers, and bans.

Every penalty adds integer points to a peer's score; one point is forgiven per
whole ``decay_seconds`` without a penalty. A peer whose score reaches
``threshold`` is banned for ``ban_seconds`` and its score starts again from
zero; penalties that arrive while it is banned (frames it sent before the ban
still being processed) are counted but add no points, so a peer is never
banned again the moment its ban ends. No ban is for good: once it ends the
peer is redialed and accepted again (an honest node scored by mistake comes
back). The clock is injected so tests and simulations control time.

``consensus_points`` says what a refusal of the consensus replica
(``consensus.actions.Rejected``) and equivocation evidence cost the validator
that sent the message; see ``CONSENSUS_POINTS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

# Points of the violations the transport itself detects (a frame that does not
# decrypt, an oversized frame, a text frame): each also closes the link.
LINK_VIOLATION_POINTS = 10
# Default points of a penalty reported by the transport's owner (malformed content).
DEFAULT_POINTS = 1

# What one refusal of the consensus replica costs the validator that signed and
# sent the message (the default ``Transport`` threshold is 100 points, one point
# is forgiven a minute). Keys are the replica's reason codes (``Rejected.reason``
# up to the first ': '); ``consensus_points`` reads them.
#
# - FORGERY_POINTS: something no honest replica ever sends, whatever its clock or
#   its view of the network: a bad signature, a forged or malformed certificate,
#   a payload that does not match its root or holds invalid transactions, a vote
#   the protocol forbids, equivocation. Three of them get a validator banned.
# - CONFLICT_POINTS: a proposal that contradicts what this node committed; an
#   honest primary cannot make one either, but the check depends on our own state,
#   so it costs less.
# - 0: timing and progress (a clock ahead, a view far ahead of ours, a NEW-VIEW's
#   empty block timestamped ahead of our clock): an honest replica with a skewed
#   clock or after a long partition sends these; refusing the message is enough.
#   Unknown codes also cost nothing (a new refusal is scored only once it is
#   listed here: tests/unit/test_peer_scoring.py checks the replica's codes).
FORGERY_POINTS = 34
CONFLICT_POINTS = 10
CONSENSUS_POINTS: Final[Mapping[str, int]] = {
    "bad-signature": FORGERY_POINTS,
    "unknown-sender": FORGERY_POINTS,
    "bad-view-change": FORGERY_POINTS,
    "bad-new-view": FORGERY_POINTS,
    "bad-payload-reply": FORGERY_POINTS,
    "payload-root-mismatch": FORGERY_POINTS,
    "payload-invalid": FORGERY_POINTS,
    "payload-too-large": FORGERY_POINTS,
    "pre-prepare-not-from-primary": FORGERY_POINTS,
    "pre-prepare-proposer-mismatch": FORGERY_POINTS,
    "prepare-from-primary": FORGERY_POINTS,
    "checkpoint-height-not-interval": FORGERY_POINTS,
    "wrong-chain": FORGERY_POINTS,
    "malformed-proposal": FORGERY_POINTS,
    "malformed-status": FORGERY_POINTS,
    "equivocation": FORGERY_POINTS,
    "pre-prepare-conflicts-with-committed": CONFLICT_POINTS,
    "new-view-conflicts-with-committed": CONFLICT_POINTS,
    "pre-prepare-timestamp-ahead": 0,
    "pre-prepare-timestamp-not-increasing": 0,
    "view-change-too-far": 0,
}
# Details of ``bad-new-view`` that are about time, not forgery: the new primary's
# clock chose an empty block's timestamp (``Replica._check_null_time``).
_TIMING_DETAILS = ("timestamped in the future", "is older than")


def consensus_points(reason: str) -> int:
    """Penalty points of a consensus refusal ``reason`` (``code`` or ``code: detail``)."""
    code, _, detail = reason.partition(": ")
    code = code.strip()
    if code == "bad-new-view" and any(t in detail for t in _TIMING_DETAILS):
        return 0
    return CONSENSUS_POINTS.get(code, 0)


@dataclass(slots=True)
class _Record:
    score: int = 0
    since: float = 0.0  # start of the current decay period
    count: int = 0
    banned_until: float | None = None


class PenaltyBook:
    """Scores and bans by node id."""

    def __init__(
        self,
        *,
        threshold: int,
        ban_seconds: float,
        decay_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold <= 0 or ban_seconds < 0 or decay_seconds <= 0:
            raise ValueError("threshold and decay_seconds must be positive, ban_seconds >= 0")
        self._threshold = threshold
        self._ban_seconds = ban_seconds
        self._decay_seconds = decay_seconds
        self._clock = clock
        self._records: dict[bytes, _Record] = {}

    def _decay(self, record: _Record, now: float) -> None:
        periods = int((now - record.since) // self._decay_seconds)
        if periods > 0:
            record.score = max(0, record.score - periods)
            record.since += periods * self._decay_seconds

    def add(self, peer_id: bytes, points: int) -> bool:
        """Count a penalty; True if it just got the peer banned.

        A peer that is banned already only has the penalty counted: its score
        stays at zero until the ban ends."""
        if points < 0:
            raise ValueError("penalty points must not be negative")
        now = self._clock()
        record = self._records.get(peer_id)
        if record is None:
            record = self._records[peer_id] = _Record(since=now)
        if self.is_banned(peer_id):
            record.count += 1
            return False
        self._decay(record, now)
        if record.score == 0:
            record.since = now
        record.score += points
        record.count += 1
        if record.score >= self._threshold:
            record.banned_until = now + self._ban_seconds
            record.score = 0
            return True
        return False

    def score(self, peer_id: bytes) -> int:
        """The current score, after decay."""
        record = self._records.get(peer_id)
        if record is None:
            return 0
        self._decay(record, self._clock())
        return record.score

    def count(self, peer_id: bytes) -> int:
        """How many penalties the peer has had in all."""
        record = self._records.get(peer_id)
        return 0 if record is None else record.count

    def banned_until(self, peer_id: bytes) -> float | None:
        """The clock time the peer's ban ends, or None if it is not banned."""
        record = self._records.get(peer_id)
        if record is None or record.banned_until is None:
            return None
        if record.banned_until <= self._clock():
            record.banned_until = None
            return None
        return record.banned_until

    def is_banned(self, peer_id: bytes) -> bool:
        """Whether the peer is banned now."""
        return self.banned_until(peer_id) is not None
