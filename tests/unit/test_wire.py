"""Frame sizes (``node.net.wire``): the consensus frame's overhead, transaction frames
that fit the frame limit, and the replica's message limit the daemon derives
from the frame limit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from consensus import sizes
from consensus.messages import (
    Checkpoint,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    Proposal,
    Status,
    ViewChange,
    encode_message,
)
from node.net.wire import (
    CONSENSUS_FRAME_OVERHEAD,
    MAX_EPOCH,
    ConsensusFrame,
    FrameError,
    TxsFrame,
    decode_frame,
    encode_frame,
    gossip_frames,
    txs_frames,
)
from node.setup import testnet
from node.setup.config import ConfigError
from node.setup.genesis import load_genesis, replica_config


def test_a_consensus_frame_is_its_message_plus_a_constant() -> None:
    proposal = Proposal("c", 1, 1, 0, bytes(32))
    vc = ViewChange(
        1, 0, bytes(32), (Checkpoint(0, bytes(32), 1, bytes(64)),) * 3, (), 2, bytes(64)
    )
    messages: list[Message] = [
        Prepare(0, 1, bytes(32), 1, bytes(64)),
        PrePrepare(0, proposal, (b"x" * 70_000,) * 3, 0, bytes(64)),
        Status(3, 10, 8, 1, bytes(64)),
        NewView(1, (vc,) * 40, (PrePrepare(1, proposal, (), 1, bytes(64)),) * 64, 1, bytes(64)),
    ]
    # a 3-array header, the tag "c" and the epoch at its widest (a uint32)
    assert CONSENSUS_FRAME_OVERHEAD == 8
    for msg in messages:
        for epoch in (0, 1, 200, 70_000, MAX_EPOCH):
            frame = encode_frame(ConsensusFrame(msg, epoch))
            assert len(frame) <= len(encode_message(msg)) + CONSENSUS_FRAME_OVERHEAD
        assert len(encode_frame(ConsensusFrame(msg, MAX_EPOCH))) == (
            len(encode_message(msg)) + CONSENSUS_FRAME_OVERHEAD
        )


def test_a_consensus_frame_carries_its_epoch_and_refuses_one_out_of_range() -> None:
    msg = Prepare(0, 1, bytes(32), 1, bytes(64))
    decoded = decode_frame(encode_frame(ConsensusFrame(msg, 7)))
    assert isinstance(decoded, ConsensusFrame) and decoded.epoch == 7
    with pytest.raises(FrameError, match="epoch out of range"):
        decode_frame(encode_frame(ConsensusFrame(msg, MAX_EPOCH + 1)))


def test_txs_frames_fit_the_limit_in_order_and_skip_what_cannot() -> None:
    txs = [bytes([i % 251]) * (100 + 37 * i) for i in range(60)]
    frames = list(txs_frames(txs, max_count=7, max_bytes=3000))
    got: list[bytes] = []
    for frame in frames:
        assert len(frame) <= 3000
        decoded = decode_frame(frame)
        assert isinstance(decoded, TxsFrame) and 1 <= len(decoded.txs) <= 7
        got.extend(decoded.txs)
    assert got == [tx for tx in txs if len(tx) + 13 <= 3000]
    assert list(txs_frames([], max_count=7, max_bytes=3000)) == []


def test_gossip_of_large_transactions_is_cut_to_the_frame_limit() -> None:
    """256 transactions of 64 KiB made one 16 MiB frame, above the 4 MiB limit (the
    transport raised, and the gossip task ended)."""
    txs = [SimpleNamespace(wire=bytes([i]) * (64 << 10)) for i in range(256)]
    frames = list(gossip_frames([tx.wire for tx in txs], 4 << 20))
    assert len(frames) == 5 and all(len(f) <= 4 << 20 for f in frames)


def test_the_replica_message_limit_follows_the_frame_limit(tmp_path: Path) -> None:
    testnet.testnet_init(tmp_path, validators=4, base_port=20000, chain_id="wire-test")
    genesis = load_genesis(tmp_path / "node0" / "genesis.json")
    cfg = replica_config(genesis, 4 << 20)
    assert cfg.max_message_bytes == (4 << 20) - CONSENSUS_FRAME_OVERHEAD
    full = sizes.pre_prepare_bytes(cfg.chain_id, cfg.batch_max_count, cfg.batch_max_bytes)
    assert replica_config(genesis, full + CONSENSUS_FRAME_OVERHEAD).max_message_bytes == full
    with pytest.raises(ConfigError, match=r"p2p.max_frame_bytes \(\d+\) is too small"):
        replica_config(genesis, full + CONSENSUS_FRAME_OVERHEAD - 1)
