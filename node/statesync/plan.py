"""Which chunk to ask which peer for, while a joining node fetches a snapshot.

A pure bookkeeping class, time passed in (the runner, ``node/statesync/runner.py``,
does the I/O). Every source peer has at most ``per_peer`` requests in flight;
missing chunks go to the least busy source, in index order; a request unanswered
after ``timeout_ms`` is forgotten and its chunk asked of another source if there
is one (the slow peer is not penalised: a link may just be slow, but after
``max_timeouts`` unanswered requests it is no longer a source, so a peer that
stays linked and never answers cannot stall the fetch). A peer that answers
with a bad chunk is dropped as a source (the runner penalises it). When no
source is left the fetch has failed and the runner starts over with fresh
offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ChunkPlan"]


@dataclass
class _Request:
    peer: bytes
    since: int


@dataclass
class ChunkPlan:
    """The fetch of ``total`` chunks from ``sources``."""

    total: int
    sources: list[bytes]
    per_peer: int = 2
    timeout_ms: int = 15_000
    max_timeouts: int = 3
    done: set[int] = field(default_factory=set)
    _asked: dict[int, _Request] = field(default_factory=dict)
    _timeouts: dict[bytes, int] = field(default_factory=dict)
    _avoid: dict[int, bytes] = field(default_factory=dict)  # chunk -> who timed out on it

    @property
    def finished(self) -> bool:
        return len(self.done) == self.total

    @property
    def failed(self) -> bool:
        return not self.finished and not self.sources

    def _load(self, peer: bytes) -> int:
        return sum(1 for r in self._asked.values() if r.peer == peer)

    def requests(self, now_ms: int) -> list[tuple[bytes, int]]:
        """(peer, chunk index) to ask now; they count as in flight from ``now_ms``."""
        for index, req in list(self._asked.items()):
            if now_ms - req.since >= self.timeout_ms:
                del self._asked[index]
                self._avoid[index] = req.peer
                self._timeouts[req.peer] = self._timeouts.get(req.peer, 0) + 1
                if self._timeouts[req.peer] >= self.max_timeouts:
                    self.on_gone(req.peer)
        out: list[tuple[bytes, int]] = []
        for index in range(self.total):
            if index in self.done or index in self._asked:
                continue
            others = [p for p in self.sources if p != self._avoid.get(index)]
            candidates = others or self.sources
            if not candidates:
                break
            peer = min(candidates, key=self._load)
            if self._load(peer) >= self.per_peer:
                if others and len(others) < len(self.sources):
                    continue  # the one free source timed out on this chunk: the next one
                break
            self._asked[index] = _Request(peer, now_ms)
            out.append((peer, index))
        return out

    def expects(self, peer: bytes, index: int) -> bool:
        """Whether ``peer`` was asked for chunk ``index`` and has not answered yet."""
        req = self._asked.get(index)
        return req is not None and req.peer == peer

    def on_good(self, peer: bytes, index: int) -> None:
        """Chunk ``index`` arrived from ``peer``, verified and written."""
        self._asked.pop(index, None)
        self._avoid.pop(index, None)
        self._timeouts.pop(peer, None)  # it answers: earlier timeouts were a slow link
        self.done.add(index)

    def on_bad(self, peer: bytes) -> None:
        """``peer`` sent a chunk that failed verification: no longer a source."""
        if peer in self.sources:
            self.sources.remove(peer)
        for index in [i for i, r in self._asked.items() if r.peer == peer]:
            del self._asked[index]

    def on_gone(self, peer: bytes) -> None:
        """``peer``'s link went down: its requests go to the others."""
        self.on_bad(peer)

    def progress(self) -> tuple[int, int]:
        return len(self.done), self.total
