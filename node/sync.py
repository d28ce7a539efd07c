"""Block sync: a node that is behind fetches certified blocks from its peers.

Peers announce their committed height (``StatusFrame``) on connect and every
second. The node is *behind* when a peer is well ahead (more than
``lag_threshold`` heights), when its own height has not moved for
``stall_ms`` while a peer is ahead, or when the replica asks (``NeedSync``).
It then splits the missing range into chunks and fetches them from several
peers at once (at most ``parallel`` requests in flight, each chunk from a
peer that has it, re-assigned to another peer after ``request_timeout_ms``).
Every block's commit certificate is checked against the validator set before
it is used; a peer that sends a bad block is penalised. Blocks are handed to
the consensus driver strictly in height order; the replica checks the
certificate again and delivers them, so a syncing node joins consensus as
soon as it has caught up. Time is passed in (``now_ms``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from consensus.messages import CommittedBlock
from consensus.quorum import CertificateError, verify_commit_certificate
from node.block import Block, BlockError
from node.wire import GetBlocksFrame, encode_frame


@dataclass
class _Request:
    start: int
    count: int
    peer: bytes
    sent_ms: int


class BlockSync:
    def __init__(
        self,
        config: ConsensusConfig,
        verifier: Verifier,
        *,
        send: Callable[[bytes, bytes], bool],
        feed: Callable[[CommittedBlock], None],
        payload_root: Callable[[tuple[bytes, ...]], bytes],
        penalise: Callable[[bytes, str], None],
        parallel: int = 4,
        chunk: int = 64,
        request_timeout_ms: int = 5_000,
        lag_threshold: int = 8,
        stall_ms: int = 3_000,
    ) -> None:
        self._config = config
        self._verifier = verifier
        self._send = send
        self._feed = feed
        self._payload_root = payload_root
        self._penalise = penalise
        self.parallel = parallel
        self.chunk = chunk
        self.request_timeout_ms = request_timeout_ms
        self.lag_threshold = lag_threshold
        self.stall_ms = stall_ms
        self.peer_heights: dict[bytes, int] = {}
        self.local_height = 0  # what the driver has committed
        self.fed_height = 0  # what we handed to the driver
        self.target = 0
        self._in_flight: dict[int, _Request] = {}  # by chunk start
        self._received: dict[int, CommittedBlock] = {}
        self._local_moved_ms = 0
        self._rr = 0

    # ------------------------------------------------------------ progress
    @property
    def syncing(self) -> bool:
        return self.target > self.local_height + self.lag_threshold // 2 or bool(self._in_flight)

    def progress(self) -> dict[str, int]:
        return {
            "local_height": self.local_height,
            "target_height": max(self.target, self.local_height),
            "best_peer_height": max(self.peer_heights.values(), default=0),
            "requests_in_flight": len(self._in_flight),
        }

    def on_committed(self, height: int, now_ms: int) -> None:
        self.local_height = max(self.local_height, height)
        self.fed_height = max(self.fed_height, height)
        self._local_moved_ms = now_ms

    # --------------------------------------------------------------- inputs
    def on_status(self, peer: bytes, height: int, now_ms: int) -> None:
        self.peer_heights[peer] = height
        if height > self.local_height + self.lag_threshold or (
            height > self.local_height and now_ms - self._local_moved_ms > self.stall_ms
        ):
            self.request(height)
        self.tick(now_ms)

    def on_peer_down(self, peer: bytes) -> None:
        self.peer_heights.pop(peer, None)
        for start, req in list(self._in_flight.items()):
            if req.peer == peer:
                del self._in_flight[start]

    def request(self, target: int, hints: Sequence[bytes] = ()) -> None:
        self.target = max(self.target, target)

    def on_blocks(self, peer: bytes, blocks: Sequence[bytes], now_ms: int) -> None:
        for raw in blocks:
            try:
                block = Block.from_bytes(raw)
                if block.header.chain_id != self._config.chain_id:
                    raise BlockError("block of another chain")
                committed = block.committed()
                if self._payload_root(committed.payload) != committed.proposal.payload_root:
                    raise BlockError("its transactions do not match the certified payload root")
                verify_commit_certificate(
                    self._config, self._verifier, committed.proposal, committed.certificate
                )
            except (BlockError, CertificateError) as exc:
                self._penalise(peer, f"bad sync block: {exc}")
                continue
            h = block.height
            if self.fed_height < h <= self.target:  # only what we asked for
                self._received[h] = committed
        for start, req in list(self._in_flight.items()):
            if req.peer == peer and all(
                h <= self.fed_height or h in self._received
                for h in range(req.start, req.start + req.count)
            ):
                del self._in_flight[start]
        self._drain()
        self.tick(now_ms)

    def _drain(self) -> None:
        while self.fed_height + 1 in self._received:
            self.fed_height += 1
            self._feed(self._received.pop(self.fed_height))

    # ----------------------------------------------------------- requests
    def tick(self, now_ms: int) -> None:
        """Re-assign timed-out chunks and send new requests, up to ``parallel``.

        Blocks handed to the driver that did not advance the committed height
        within a request timeout (refused by the replica, or lost) are fetched
        again rather than waited for forever."""
        if self.fed_height > self.local_height and now_ms - self._local_moved_ms > (
            self.request_timeout_ms
        ):
            self.fed_height = self.local_height
            self._local_moved_ms = now_ms
        for start, req in list(self._in_flight.items()):
            if now_ms - req.sent_ms > self.request_timeout_ms:
                del self._in_flight[start]
                self._penalise(req.peer, "sync request timed out")
        if self.target <= self.fed_height:
            return
        start = self.fed_height + 1
        while len(self._in_flight) < self.parallel and start <= self.target:
            count = min(self.chunk, self.target - start + 1)
            if start in self._in_flight or all(
                h in self._received for h in range(start, start + count)
            ):
                start += count
                continue
            peer = self._pick_peer(start + count - 1) or self._pick_peer(start)
            if peer is None:
                return
            self._in_flight[start] = _Request(start, count, peer, now_ms)
            self._send(peer, encode_frame(GetBlocksFrame(start, count)))
            start += count

    def _pick_peer(self, height: int) -> bytes | None:
        candidates = sorted(p for p, h in self.peer_heights.items() if h >= height)
        if not candidates:
            return None
        self._rr += 1
        return candidates[self._rr % len(candidates)]
