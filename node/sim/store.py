"""The in-memory stand-in for a node's durable storage.

It holds exactly what survives a simulated crash: the replica's persisted
records (``Persist`` upserts, ``None`` deletes) and the committed chain with
the simulated app-state root after each block. The replica object and
everything else in memory is lost on a crash; a restart hands the replica a
copy of ``records`` and the ``tip`` of ``chain``.

The simulated app state is only a hash chain of the committed proposals:
``root(h) = SHA-256(root(h-1) || digest(h))``, ``root(0) = genesis_root``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from consensus.messages import CommittedBlock


class DurableStore:
    __slots__ = ("chain", "records", "roots")

    def __init__(self, genesis_root: bytes) -> None:
        self.records: dict[bytes, bytes] = {}
        self.chain: list[CommittedBlock] = []
        self.roots: list[bytes] = [genesis_root]

    @property
    def height(self) -> int:
        return len(self.chain)

    def persist(self, records: Iterable[tuple[bytes, bytes | None]]) -> None:
        recs = self.records
        for key, value in records:
            if value is None:
                recs.pop(key, None)
            else:
                recs[key] = value

    def append(self, block: CommittedBlock, digest: bytes) -> bytes:
        """Execute ``block`` (the next height): append it and return the new state root."""
        root = hashlib.sha256(self.roots[-1] + digest).digest()
        self.chain.append(block)
        self.roots.append(root)
        return root

    def tip(self) -> tuple[int, int, bytes]:
        """(height, timestamp, state root) of the last executed block."""
        if not self.chain:
            return 0, 0, self.roots[0]
        return len(self.chain), self.chain[-1].proposal.timestamp, self.roots[-1]

    def blocks_after(self, height: int, limit: int) -> tuple[CommittedBlock, ...]:
        return tuple(self.chain[height : height + limit])
