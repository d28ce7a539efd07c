"""A node's drifting local clock over the simulation's virtual time (integers only).

``local(t) = epoch + offset + t + t * rate_ppm // 1e6`` is non-decreasing in the
virtual time ``t`` (for ``rate_ppm > -1e6``); ``virtual_at(local)`` is its
inverse rounded up: the first virtual instant at which the local clock shows
at least ``local``. Timers a replica sets in its own clock are scheduled there.
"""

from __future__ import annotations

PPM = 1_000_000


class NodeClock:
    __slots__ = ("base", "rate_ppm")

    def __init__(self, epoch_ms: int, offset_ms: int = 0, rate_ppm: int = 0) -> None:
        self.base = epoch_ms + offset_ms
        self.rate_ppm = rate_ppm

    def local(self, t: int) -> int:
        if self.rate_ppm:
            return self.base + t + t * self.rate_ppm // PPM
        return self.base + t

    def virtual_at(self, local: int) -> int:
        """Smallest virtual ``t`` with ``self.local(t) >= local``."""
        if not self.rate_ppm:
            return local - self.base
        want = local - self.base
        # t * (1e6 + rate) / 1e6 >= want, then correct the floor rounding
        t = -(-want * PPM // (PPM + self.rate_ppm))
        while self.local(t) < local:
            t += 1
        while self.local(t - 1) >= local:
            t -= 1
        return t
