"""Parameters of a replica: the validator set and the protocol's knobs.

All durations are integer milliseconds of the caller's clock; nothing here
reads a clock. ``f`` and the quorum sizes follow from ``n`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus import sizes
from consensus.epochs import signing_domain

# knobs each node chooses for itself: not part of genesis.json, not agreed on
NODE_LOCAL_FIELDS = ("status_interval_ms", "max_message_bytes")
# set from the chain's epochs (consensus/epochs.py), not genesis.json knobs either
EPOCH_FIELDS = ("epoch", "base_height")


@dataclass(frozen=True)
class ConsensusConfig:
    chain_id: str
    n: int
    # the epoch this replica serves and the height below its first one, its
    # starting low watermark (genesis: epoch 0 from height 0; consensus/epochs.py)
    epoch: int = 0
    base_height: int = 0
    # batching: the primary proposes when a batch is full or the timer fires
    batch_max_count: int = 500
    batch_max_bytes: int = 1 << 20
    batch_timeout_ms: int = 20
    # pipelining: at most this many proposed-but-uncommitted heights at once
    pipeline_window: int = 4
    # checkpoints every K heights; watermarks span ``watermark_window`` heights
    checkpoint_interval: int = 16
    watermark_window: int = 64
    # view change: timeout for an in-flight proposal or a pending request,
    # doubling with every consecutive view change, back to base on progress
    view_change_timeout_ms: int = 2_000
    view_change_timeout_max_ms: int = 60_000
    request_timeout_ms: int = 4_000
    # how far in the future a fresh proposal's timestamp may be
    max_clock_drift_ms: int = 2_000
    # pre-prepares above the high watermark kept for later, per replica
    future_buffer_limit: int = 256
    # minimum spacing of NEW-VIEW pushes / requests to one peer
    resend_interval_ms: int = 1_000
    # every replica tells the others its height this often (quiet networks)
    status_interval_ms: int = 2_000
    # no message the replica sends may be larger: the peer frame limit less the
    # frame's own overhead, set by the daemon and the simulator (0: not checked)
    max_message_bytes: int = 0

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"consensus: n must be >= 1, got {self.n}")
        if self.checkpoint_interval < 1:
            raise ValueError("consensus: checkpoint_interval must be >= 1")
        if self.epoch < 0 or self.base_height < 0 or self.base_height % self.checkpoint_interval:
            raise ValueError(
                f"consensus: epoch {self.epoch} cannot start after height {self.base_height}: "
                "an epoch starts after a checkpoint height"
            )
        if self.watermark_window < 2 * self.checkpoint_interval:
            raise ValueError(
                "consensus: watermark_window must be at least 2 * checkpoint_interval "
                f"({self.watermark_window} < {2 * self.checkpoint_interval})"
            )
        if not 1 <= self.pipeline_window <= self.watermark_window:
            raise ValueError("consensus: pipeline_window must be in [1, watermark_window]")
        if self.batch_max_count < 1 or self.batch_max_bytes < 1:
            raise ValueError("consensus: batch limits must be positive")
        if self.resend_interval_ms < 1 or self.status_interval_ms < 1:
            raise ValueError("consensus: resend and status intervals must be positive")
        self._check_message_sizes()

    def _check_message_sizes(self) -> None:
        """Refuse a configuration whose largest messages could not be sent."""
        limit = self.max_message_bytes
        if limit <= 0:
            return
        pp = sizes.pre_prepare_bytes(self.chain_id, self.batch_max_count, self.batch_max_bytes)
        if pp > limit:
            raise ValueError(
                f"consensus: a full batch makes a {pp}-byte PRE-PREPARE, above the "
                f"{limit}-byte message limit: lower batch_max_bytes or raise the frame limit"
            )
        nv = sizes.new_view_bytes(self.chain_id, self.n, self.watermark_window)
        if nv > limit:
            raise ValueError(
                f"consensus: with n = {self.n} and watermark_window = {self.watermark_window} "
                f"a NEW-VIEW can reach {nv} bytes, above the {limit}-byte message limit: "
                "lower watermark_window or raise the frame limit"
            )

    @property
    def signing_domain(self) -> str:
        """What this epoch's messages are signed under (``epochs.signing_domain``)."""
        return signing_domain(self.chain_id, self.epoch)

    @property
    def f(self) -> int:
        return (self.n - 1) // 3

    @property
    def quorum(self) -> int:
        """Matching votes needed to prepare, commit, stabilise and change view.

        ceil((n+f+1)/2): exactly 2f+1 when n = 3f+1, and large enough for any
        other n that two quorums share f+1 replicas, one of them honest.
        """
        return (self.n + self.f + 2) // 2

    @property
    def weak_quorum(self) -> int:
        """f+1: at least one of them is honest."""
        return self.f + 1

    def primary(self, view: int) -> int:
        return view % self.n
