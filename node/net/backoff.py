"""Capped exponential backoff with jitter, for redialing peers.

Attempt ``n`` (from 0) waits a random time in ``[d/2, d]`` with
``d = min(cap, base * 2**n)`` ("equal jitter"): the delay grows quickly to the
cap, never drops to zero, and dialers that lost the same peer at the same time
spread out instead of reconnecting in lockstep. The random source is injected
so runs can be reproduced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Delay before the next attempt, given how many attempts failed in a row."""

    base: float = 0.5
    cap: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1``."""
        if attempt < 0:
            raise ValueError("attempt must not be negative")
        ceiling = min(self.cap, self.base * (1 << min(attempt, 64)))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
