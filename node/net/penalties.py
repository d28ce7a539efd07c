"""Misbehaviour scores of peers, and bans.

Every penalty adds integer points to a peer's score; one point is forgiven per
whole ``decay_seconds`` without a penalty. A peer whose score reaches
``threshold`` is banned for ``ban_seconds`` and its score starts again from
zero. The clock is injected so tests and simulations control time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Points of the violations the transport itself detects (a frame that does not
# decrypt, an oversized frame, a text frame): each also closes the link.
LINK_VIOLATION_POINTS = 10
# Default points of a penalty reported by the transport's owner (malformed content).
DEFAULT_POINTS = 1


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
        """Count a penalty; True if it just got the peer banned."""
        if points < 0:
            raise ValueError("penalty points must not be negative")
        now = self._clock()
        record = self._records.get(peer_id)
        if record is None:
            record = self._records[peer_id] = _Record(since=now)
        self._decay(record, now)
        if record.score == 0:
            record.since = now
        record.score += points
        record.count += 1
        if record.score >= self._threshold and not self.is_banned(peer_id):
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
