"""Per-peer budgets of consensus traffic: what a validator may send us per second.

A Byzantine validator can send messages that are validly signed and useless:
votes for heights delivered long ago, duplicates, commits for thousands of
views, the same heavy VIEW-CHANGE again and again. The replica refuses or
ignores them, but only after a signature check each (and a certificate check
for a VIEW-CHANGE or NEW-VIEW). The daemon therefore counts, per peer and per
one-second window, the consensus messages it receives, their bytes, and the
heavy ones (VIEW-CHANGE, NEW-VIEW) among them; a message beyond any of the
three limits in a window is dropped *before* its signature is checked, so an
over-budget message costs a decode and a dict lookup. The first drop of a
window penalises the peer (``PeerBudget.penalty_points``): a peer over budget
for 10 windows while its score decays by one point a minute reaches the
transport's threshold (100) and is banned like any other misbehaving peer,
for the transport's ban period, then accepted again.

The limits (``consensus_budget``) are what one honest validator can need,
times ``MARGIN`` (4), from the consensus configuration:

- heights per second ``H = max(pipeline_window * 1000 / batch_timeout_ms,
  TX_RATE_CEILING / batch_max_count)``: a primary proposes at most a window of
  heights per batch timeout unless batches fill up faster, and full batches
  come at most as fast as ``TX_RATE_CEILING`` (20,000 tx/s, about 20 times
  the throughput measured in docs/benchmarks.md) allows;
- per height a validator sends at most ``PER_HEIGHT`` (3) messages: its
  PRE-PREPARE or PREPARE, its COMMIT, and a CHECKPOINT, PAYLOAD-REQUEST or
  PAYLOAD-REPLY now and then;
- per resend interval it repeats at most its votes for every height of the
  watermark window (2 * watermark_window), its checkpoints (watermark_window /
  checkpoint_interval + 1) and a few control messages (``PER_RESEND_EXTRA``:
  STATUS, VIEW-CHANGE, NEW-VIEW, NEW-VIEW-REQUEST, an answer);
- a STATUS every ``status_interval_ms``.

``messages = MARGIN * (PER_HEIGHT * H + per_resend * 1000 / resend_interval_ms
+ 1000 / status_interval_ms)``. With the genesis defaults (window 4, batch
timeout 20 ms, 500 per batch, watermark window 64, checkpoints every 16,
resend 1 s, status 2 s): H = 200, 3 * 200 + 138 + 0.5 = 738.5, budget 2,954
messages per second per peer.

``heavy = MARGIN * HEAVY_PER_RESEND * 1000 / resend_interval_ms`` (at least
``MARGIN * HEAVY_PER_RESEND``): an honest replica sends one peer at most its
VIEW-CHANGE, a repeat of it, an answer to an old one and a NEW-VIEW push per
resend interval (the replica rate-limits each). Defaults: 16 per second.

``bytes = max(BYTES_FLOOR, MARGIN * (pipeline_window * full PRE-PREPARE + 2 *
largest message))``: a window of full proposals and a VIEW-CHANGE and a
NEW-VIEW of the largest size each second. Defaults: max(64 MiB, 4 * (4 *
1.0 MiB + 2 * 4 MiB)) = 64 MiB per second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Final

from consensus import sizes
from consensus.config import ConsensusConfig

MARGIN: Final = 4
TX_RATE_CEILING: Final = 20_000
PER_HEIGHT: Final = 3
PER_RESEND_EXTRA: Final = 5
HEAVY_PER_RESEND: Final = 4
BYTES_FLOOR: Final = 64 << 20
HEAVY_KINDS: Final = frozenset({"ViewChange", "NewView"})
# one window over budget: ten of them (less one point of decay a minute) reach
# the transport's default threshold of 100
OVER_BUDGET_POINTS: Final = 10


@dataclass(frozen=True, slots=True)
class PeerBudget:
    """Limits per peer and per window."""

    messages: int
    bytes: int
    heavy: int
    window_s: float = 1.0
    penalty_points: int = OVER_BUDGET_POINTS

    def __post_init__(self) -> None:
        if min(self.messages, self.bytes, self.heavy) < 1 or self.window_s <= 0:
            raise ValueError("budget limits and window must be positive")
        if self.penalty_points < 0:
            raise ValueError("penalty points must not be negative")


def consensus_budget(cfg: ConsensusConfig, max_frame_bytes: int) -> PeerBudget:
    """The budget of one validator peer for consensus ``cfg`` (module docstring)."""
    heights = max(
        cfg.pipeline_window * 1000 / max(cfg.batch_timeout_ms, 1),
        TX_RATE_CEILING / cfg.batch_max_count,
    )
    window = cfg.watermark_window
    per_resend = 2 * window + window // cfg.checkpoint_interval + 1 + PER_RESEND_EXTRA
    ticks = 1000 / cfg.resend_interval_ms
    honest = PER_HEIGHT * heights + per_resend * ticks + 1000 / cfg.status_interval_ms
    largest = cfg.max_message_bytes or max_frame_bytes
    proposal = sizes.pre_prepare_bytes(cfg.chain_id, cfg.batch_max_count, cfg.batch_max_bytes)
    return PeerBudget(
        messages=math.ceil(MARGIN * honest),
        bytes=max(BYTES_FLOOR, MARGIN * (cfg.pipeline_window * proposal + 2 * largest)),
        heavy=math.ceil(MARGIN * HEAVY_PER_RESEND * max(ticks, 1.0)),
    )


class Verdict(Enum):
    """What to do with one message."""

    ADMIT = "admit"
    DROP = "drop"  # over budget in this window
    PENALISE = "penalise"  # over budget, the first drop of this window: drop and penalise


@dataclass(slots=True)
class _Window:
    start: float
    messages: int = 0
    bytes: int = 0
    heavy: int = 0
    over: bool = False


class TrafficBudget:
    """Counts each peer's consensus messages in fixed windows against a ``PeerBudget``."""

    def __init__(self, budget: PeerBudget, heavy_kinds: frozenset[str] = HEAVY_KINDS) -> None:
        self.budget = budget
        self._heavy_kinds = heavy_kinds
        self._windows: dict[bytes, _Window] = {}
        self.dropped = 0

    def admit(self, peer: bytes, kind: str, size: int, now: float) -> Verdict:
        """Count one message of ``kind`` and ``size`` bytes from ``peer`` at ``now``
        (monotonic seconds); the verdict says whether it is within budget."""
        b = self.budget
        w = self._windows.get(peer)
        if w is None or now >= w.start + b.window_s or now < w.start:
            w = self._windows[peer] = _Window(now)
        heavy = kind in self._heavy_kinds
        if (
            w.messages + 1 > b.messages
            or w.bytes + size > b.bytes
            or (heavy and w.heavy + 1 > b.heavy)
        ):
            self.dropped += 1
            if w.over:
                return Verdict.DROP
            w.over = True
            return Verdict.PENALISE
        w.messages += 1
        w.bytes += size
        w.heavy += heavy
        return Verdict.ADMIT

    def forget(self, peer: bytes) -> None:
        """Drop the window of a peer that went away."""
        self._windows.pop(peer, None)
