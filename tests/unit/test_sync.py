"""Block sync (node.net.sync.BlockSync): what it accepts from peers and in what order."""

from __future__ import annotations

from consensus.config import ConsensusConfig
from consensus.crypto import Verifier
from node.core.block import Block, derive_block
from node.net.sync import BlockSync
from tests.unit.cluster import Cluster


def _chain(blocks: int) -> tuple[Cluster, list[Block]]:
    c = Cluster(4)
    for i in range(blocks):
        c.request(b"tx:%d" % i)
        c.run(c.now + 100)
    served = [
        derive_block(b, "00" * 32, "11" * 32, tx_hash=c.rules.request_id) for b in c.nodes[0].blocks
    ]
    return c, served


def _sync(c: Cluster) -> tuple[BlockSync, list[int], list[str]]:
    fed: list[int] = []
    penalties: list[str] = []
    sync = BlockSync(
        c.config,
        c.verifier,
        send=lambda peer, frame: True,
        feed=lambda block: fed.append(block.height),
        payload_root=c.rules.payload_root,
        penalise=lambda peer, why: penalties.append(why),
        lag_threshold=0,
    )
    return sync, fed, penalties


def test_certified_blocks_are_fed_in_height_order() -> None:
    """Blocks answered out of order are handed to the driver 1, 2, 3."""
    c, served = _chain(3)
    sync, fed, penalties = _sync(c)
    sync.on_status(b"peer", 3, 0)
    sync.on_blocks(b"peer", [served[2].to_bytes(), served[0].to_bytes()], 1)
    assert fed == [1]
    sync.on_blocks(b"peer", [served[1].to_bytes()], 2)
    assert fed == [1, 2, 3] and not penalties


def test_block_with_swapped_transactions_is_refused_and_penalised() -> None:
    """A block whose header, hashes and certificate are genuine but whose
    transactions were swapped is refused (it would stall the replica forever)."""
    c, served = _chain(3)
    sync, fed, penalties = _sync(c)
    sync.on_status(b"peer", 3, 0)
    b2 = served[1]
    evil = Block(b2.header, (b"tx:EVIL",), b2.tx_hashes, b2.certificate)
    sync.on_blocks(b"peer", [served[0].to_bytes(), evil.to_bytes(), served[2].to_bytes()], 1)
    assert fed == [1]
    assert penalties and "payload root" in penalties[0]


def test_blocks_nobody_asked_for_are_not_kept() -> None:
    """Blocks above the sync target are dropped, not buffered without bound."""
    c, served = _chain(3)
    sync, fed, _penalties = _sync(c)
    sync.on_blocks(b"peer", [b.to_bytes() for b in served], 1)
    assert fed == [] and sync.fed_height == 0


def test_blocks_that_do_not_advance_the_chain_are_fetched_again() -> None:
    """If the driver does not commit what sync fed (refused or lost), sync forgets
    it after a request timeout and asks again instead of waiting forever."""
    c, served = _chain(2)
    sync, _fed, _penalties = _sync(c)
    sync.on_status(b"peer", 2, 0)
    sync.on_blocks(b"peer", [b.to_bytes() for b in served], 1)
    assert sync.fed_height == 2
    sync.tick(1 + sync.request_timeout_ms + 1)
    assert sync.fed_height == 0


# -- sync targets backed by what peers can serve (issue 11, item 4) -------------

LIAR = b"liar"
HUGE = 2**62


def test_one_peer_claiming_a_huge_height_does_not_mark_the_node_syncing() -> None:
    """A single status claim (f = 1 here, so one peer is not f + 1) is no evidence:
    the node is not syncing, and its target stays what peers back."""
    c, _served = _chain(1)
    sync, _fed, _penalties = _sync(c)
    sync.on_status(LIAR, HUGE, 0)
    assert not sync.syncing
    assert sync.progress()["target_height"] < HUGE


def test_f_plus_one_peers_claiming_a_height_mark_the_node_syncing() -> None:
    c, _served = _chain(1)
    sync, _fed, _penalties = _sync(c)
    sync.on_status(b"p1", 50, 0)
    assert not sync.syncing
    sync.on_status(b"p2", 40, 0)
    assert sync.syncing and sync.progress()["target_height"] == 40


def test_target_falls_when_the_claiming_peer_leaves() -> None:
    c, _served = _chain(1)
    sync, _fed, _penalties = _sync(c)
    sync.on_status(LIAR, HUGE, 0)
    sync.on_peer_down(LIAR)
    assert sync.target == 0 and not sync.syncing
    assert sync.progress()["requests_in_flight"] == 0


def test_target_falls_when_the_claiming_peer_does_not_deliver() -> None:
    """A peer that times out is no longer believed above what it failed to serve,
    even when it repeats its claim; the node is not stuck syncing."""
    c, _served = _chain(1)
    sync, _fed, penalties = _sync(c)
    sync.on_status(LIAR, HUGE, 0)
    sync.tick(sync.request_timeout_ms + 1)
    assert penalties == ["sync request timed out"]
    sync.on_status(LIAR, HUGE, sync.request_timeout_ms + 2)
    assert sync.target == 0 and not sync.syncing
    assert sync.progress()["requests_in_flight"] == 0


def test_an_empty_answer_caps_the_claim_and_a_partial_one_is_not_penalised() -> None:
    c, served = _chain(3)
    sync, fed, penalties = _sync(c)
    sync.on_status(b"honest", 3, 0)
    sync.on_blocks(b"honest", [served[0].to_bytes()], 1)  # cut short by a frame limit
    assert fed == [1] and not penalties
    assert sync.progress()["requests_in_flight"] == 1  # the rest asked for again
    sync.on_blocks(b"honest", [], 2)  # nothing: it cannot serve 2..3 after all
    assert sync.target == 1 and not penalties and not sync.syncing


def test_the_replicas_request_backs_a_target_once_a_peer_can_serve_it() -> None:
    """The replica asks (f + 1 signed STATUS messages) before any status frame has
    arrived: the node counts as syncing as soon as one peer claims the height."""
    c, _served = _chain(1)
    sync, _fed, _penalties = _sync(c)
    sync.request(30)
    assert not sync.syncing  # nobody to fetch from yet
    sync.on_status(b"p1", 30, 0)
    assert sync.syncing and sync.backed_target == 30


def test_a_request_naming_one_peer_is_fetched_but_does_not_back_syncing() -> None:
    """A stalled replica asks the single peer ahead (hints of one): sync fetches,
    but one validator's word does not make the node report itself syncing."""
    c, _served = _chain(1)
    sync, _fed, _penalties = _sync(c)
    sync.on_status(LIAR, HUGE, 0)
    sync.request(64, (3,))
    assert sync.target >= 64 and sync.progress()["requests_in_flight"] >= 1
    assert not sync.syncing


def test_blocks_above_the_horizon_wait_unchecked_then_are_checked_in_order() -> None:
    """A block whose validator set is not known yet (a change may commit below it)
    is kept unchecked; once the blocks below are executed it is checked against
    its own set and handed on, and a bad one then penalises its sender."""
    c, served = _chain(4)
    fed: list[int] = []
    penalties: list[str] = []
    known = {"up_to": 2}

    def certifier(h: int) -> tuple[ConsensusConfig, Verifier] | None:
        return (c.config, c.verifier) if h <= known["up_to"] else None

    sync = BlockSync(
        c.config,
        c.verifier,
        send=lambda peer, frame: True,
        feed=lambda block: fed.append(block.height),
        payload_root=c.rules.payload_root,
        penalise=lambda peer, why: penalties.append(why),
        lag_threshold=0,
        certifier=certifier,
    )
    sync.on_status(b"peer", 4, 0)
    b4 = served[3]
    forged = Block(b4.header, b4.txs, b4.tx_hashes, b4.certificate[:1])  # one signature
    sync.on_blocks(b"peer", [s.to_bytes() for s in served[:3]] + [forged.to_bytes()], 1)
    assert fed == [1, 2] and not penalties
    known["up_to"] = 4  # blocks 1 and 2 executed: the sets of 3 and 4 are known
    sync.on_committed(2, 2)
    assert fed == [1, 2, 3]
    assert penalties and "bad sync block" in penalties[0]
