"""Unit tests of the Byzantine process's parts (tests/chaos/byzantine_node.py): its
settings, the witnessed split, the behaviours it adds, the garbage frames (and
what an honest node's decoding makes of each), and the hooked driver and
transport, without running a node (tests/functional/test_byzantine_process.py
runs it)."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import msgspec
import nacl.signing
import pytest

from consensus.actions import Broadcast, Relay, Send
from consensus.config import ConsensusConfig
from consensus.messages import (
    Commit,
    Message,
    Prepare,
    PrePrepare,
    Proposal,
    Status,
    decode_message,
    encode_message,
    sign_message,
)
from node.core.keys import KeySigner, ValidatorVerifier
from node.core.tx import TxError, TxPayloadRules, decode_tx
from node.engine.driver import DriverHooks
from node.net.wire import (
    BlocksFrame,
    ConsensusFrame,
    Frame,
    FrameError,
    GetBlocksFrame,
    StatusFrame,
    TxsFrame,
    decode_frame,
    encode_frame,
)
from node.sim.byzantine import LIE_HEIGHT
from node.sim.scenario import BEHAVIOURS
from tests.chaos import byzantine_node as bn
from tests.chaos.byzantine_node import (
    COVERED,
    GARBAGE_KINDS,
    OVERSIZED_INTERVAL_S,
    SUPPORTED,
    Acts,
    ByzantineDriver,
    ByzantineTransport,
    ConflictingVotes,
    GarbageFlood,
    GarbageMaker,
    Settings,
    SettingsError,
    WitnessedEquivocate,
    conflicting_digest,
    frame_tag,
    make_twist,
    settings_from_env,
    split_plan,
)

CHAIN = "hygeia-unit"
CONFIG = ConsensusConfig(chain_id=CHAIN, n=4)
KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(4)]
PUBS = [bytes(k.verify_key) for k in KEYS]
VERIFIER = ValidatorVerifier(PUBS)
RULES = TxPayloadRules(CHAIN)


class Recorder:
    """An ``Outbox`` that keeps what is posted."""

    def __init__(self) -> None:
        self.posts: list[tuple[int, int, Message, int]] = []

    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None:
        self.posts.append((src, dst, msg, extra_delay))


def valid(msg: Any) -> bool:
    return VERIFIER.verify(msg.sender, msg.signing_bytes(CHAIN), msg.sig)


def signed(msg: Any, by: int) -> Any:
    return sign_message(msg, KeySigner(KEYS[by]).sign, CHAIN)


def own_pre_prepare(me: int = 0) -> PrePrepare:
    payload = (b"a", b"b")
    proposal = Proposal(CHAIN, 1, 5000, me, RULES.payload_root(payload))
    pp: PrePrepare = signed(PrePrepare(0, proposal, payload, me), me)
    return pp


def twist(name: str, me: int = 0, seed: int = 1) -> Any:
    return make_twist(
        Settings(name, seed=seed), me, CONFIG, KeySigner(KEYS[me]), RULES, max_frame_bytes=1 << 16
    )


# ------------------------------------------------------------------ settings
def test_settings_from_the_environment() -> None:
    assert settings_from_env({"CHAOS_BYZANTINE": "equivocate"}) == Settings("equivocate")
    env = {
        "CHAOS_BYZANTINE": " delay ",
        "CHAOS_BYZANTINE_SEED": "7",
        "CHAOS_BYZANTINE_DELAY_MS": "250",
        "CHAOS_BYZANTINE_COUNT": "40",
        "CHAOS_BYZANTINE_RATE": "2.5",
    }
    assert settings_from_env(env) == Settings("delay", seed=7, delay_ms=250, count=40, rate=2.5)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CHAOS_BYZANTINE": " "}, "CHAOS_BYZANTINE=''"),
        ({"CHAOS_BYZANTINE": "lying"}, "CHAOS_BYZANTINE='lying'"),
        ({"CHAOS_BYZANTINE_SEED": "x"}, "CHAOS_BYZANTINE_SEED='x'"),
        ({"CHAOS_BYZANTINE_DELAY_MS": "0"}, "CHAOS_BYZANTINE_DELAY_MS=0"),
        ({"CHAOS_BYZANTINE_COUNT": "-1"}, "CHAOS_BYZANTINE_COUNT=-1"),
        ({"CHAOS_BYZANTINE_RATE": "0"}, "CHAOS_BYZANTINE_RATE=0"),
        ({"CHAOS_BYZANTINE_RATE": "1e9"}, "CHAOS_BYZANTINE_RATE=1e+09"),
        ({"CHAOS_BYZANTINE_RATE": "fast"}, "CHAOS_BYZANTINE_RATE='fast'"),
    ],
)
def test_a_bad_setting_is_named(env: dict[str, str], names: str) -> None:
    full = {"CHAOS_BYZANTINE": "garbage", **env}
    with pytest.raises(SettingsError) as err:
        settings_from_env(full)
    assert str(err.value).startswith(names), err.value


def test_main_refuses_a_bad_setting_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHAOS_BYZANTINE", "nonsense")
    with pytest.raises(SystemExit) as exited:
        bn.main()
    assert exited.value.code == 2
    assert "CHAOS_BYZANTINE='nonsense'" in capsys.readouterr().err


def test_every_behaviour_of_the_simulator_and_two_more() -> None:
    assert set(BEHAVIOURS) <= set(SUPPORTED) and len(set(SUPPORTED)) == len(SUPPORTED)
    assert set(COVERED) <= set(SUPPORTED)
    assert {"equivocate", "vote_all", "stale_view_change", "garbage"} <= set(COVERED)
    for name in SUPPORTED:
        assert twist(name, me=2).name == name
        assert twist(name, me=2).me == 2


# ------------------------------------------------------------------ acts
def test_acts_are_reported_at_powers_of_two() -> None:
    told: list[tuple[str, int]] = []
    acts = Acts(lambda act, count: told.append((act, count)))
    for _ in range(9):
        acts.note("sent other Prepare")
    acts.note("withheld Commit", 3)
    acts.note("withheld Commit", 2)
    assert told == [
        ("sent other Prepare", 1),
        ("sent other Prepare", 2),
        ("sent other Prepare", 4),
        ("sent other Prepare", 8),
        ("withheld Commit", 3),
        ("withheld Commit", 5),
    ]
    assert acts.counts == {"sent other Prepare": 9, "withheld Commit": 5}


# ------------------------------------------------------------------ the witnessed split
@pytest.mark.parametrize("seed", range(20))
def test_split_plan_gives_half_the_other_version_and_one_witness_both(seed: int) -> None:
    plan = split_plan(random.Random(seed), (1, 2, 3))
    first, (witness, second) = plan[:3], plan[3]
    assert sorted(d for d, _ in first) == [1, 2, 3]
    assert sum(v for _, v in first) == 1  # a half, rounded down, gets the other
    assert dict(first)[witness] == 1 - second  # the witness gets the version it lacked
    assert split_plan(random.Random(seed), (1, 2, 3)) == plan  # seeded


def test_split_plan_of_one_and_of_none() -> None:
    assert split_plan(random.Random(0), (2,)) == [(2, 0), (2, 1)]
    assert split_plan(random.Random(0), ()) == []


def test_the_witnessed_equivocation_signs_two_proposals_and_one_peer_gets_both() -> None:
    b = twist("equivocate")
    assert isinstance(b, WitnessedEquivocate)
    pp = own_pre_prepare()
    out = Recorder()
    b.transmit(out, (1, 2, 3), pp)
    assert len(out.posts) == 4 and all(src == 0 and delay == 0 for src, _, _, delay in out.posts)
    got: dict[int, list[bytes]] = {}
    for _, dst, m, _ in out.posts:
        assert isinstance(m, PrePrepare) and valid(m)
        assert (m.view, m.height, m.sender) == (pp.view, pp.height, 0)
        got.setdefault(dst, []).append(m.proposal.digest())
    digests = {d for ds in got.values() for d in ds}
    assert len(digests) == 2 and pp.proposal.digest() in digests
    assert sorted(len(ds) for ds in got.values()) == [1, 1, 2]
    assert len(set(next(ds for ds in got.values() if len(ds) == 2))) == 2
    # anything else goes as made: a vote, a pre-prepare to one peer, another's
    for msg, dsts in ((signed(Prepare(0, 1, bytes(32), 0), 0), (1, 2, 3)), (pp, (2,))):
        out = Recorder()
        b.transmit(out, dsts, msg)
        assert [(d, m) for _, d, m, _ in out.posts] == [(d, msg) for d in dsts]


def test_conflicting_votes_sign_a_second_vote_of_another_digest() -> None:
    b = twist("conflicting_votes", me=3)
    assert isinstance(b, ConflictingVotes)
    for vote in (signed(Prepare(2, 9, b"d" * 32, 3), 3), signed(Commit(2, 9, b"d" * 32, 3), 3)):
        out = Recorder()
        b.transmit(out, (0, 1, 2), vote)
        assert len(out.posts) == 4
        others = [m for _, _, m, _ in out.posts if m != vote]
        assert len(others) in (1, 2, 3)
        for m in others:
            assert isinstance(m, Prepare | Commit) and type(m) is type(vote) and valid(m)
            assert (m.view, m.height, m.sender) == (2, 9, 3)
            assert m.digest == conflicting_digest(vote.digest) != vote.digest
    status = signed(Status(0, 1, 0, 3), 3)
    out = Recorder()
    b.transmit(out, (0, 1, 2), status)
    assert [m for *_, m, _ in out.posts] == [status] * 3


# ------------------------------------------------------------------ garbage
def test_frame_tag_reads_the_tag_of_each_frame_kind() -> None:
    vote = Prepare(0, 1, bytes(32), 0)
    frames: dict[str, Frame] = {
        "c": ConsensusFrame(vote),
        "t": TxsFrame([b"x"]),
        "s": StatusFrame(3, 1),
        "gb": GetBlocksFrame(1, 2),
        "b": BlocksFrame([b"x"]),
    }
    for tag, frame in frames.items():
        assert frame_tag(encode_frame(frame)) == tag
    assert frame_tag(b"") is None and frame_tag(b"\x93") is None
    assert frame_tag(b"\x93\xa5ab") is None  # a tag cut short
    assert frame_tag(b"\x01\x02\x03") is None


def test_each_garbage_kind_is_refused_by_an_honest_node_as_intended() -> None:
    maker = GarbageMaker(random.Random(3), me=1, n=4, max_frame_bytes=1 << 16)
    for _ in range(20):  # random contents: several draws of each kind
        for kind in ("random", "truncated", "unknown_tag", "bad_message", "bad_range"):
            with pytest.raises(FrameError):
                decode_frame(maker.make(kind))
        with pytest.raises(FrameError):
            decode_frame(maker.make("negative_status"))
        txs = decode_frame(maker.make("junk_tx"))
        assert isinstance(txs, TxsFrame) and len(txs.txs) == 1
        with pytest.raises(TxError):
            decode_tx(txs.txs[0], chain_id=CHAIN)
        wrong = decode_frame(maker.make("wrong_sender"))
        assert isinstance(wrong, ConsensusFrame) and wrong.message.sender in (0, 2, 3)
        forged = decode_frame(maker.make("bad_signature"))
        assert isinstance(forged, ConsensusFrame) and forged.message.sender == 1
        assert not valid(forged.message)
    big = maker.make("oversized")
    assert len(big) == (1 << 16) + 1 and maker.make("oversized") is big
    with pytest.raises(ValueError):
        maker.make("polite")


def test_the_flood_takes_the_kinds_in_turn_and_oversized_frames_seldom() -> None:
    flood = GarbageFlood(None, None, 10.0, Acts(lambda a, c: None))  # type: ignore[arg-type]
    assert flood.interval == pytest.approx(0.1)
    peer = b"p" * 32
    kinds = [flood.kind_for(peer, 100.0) for _ in range(2 * len(GARBAGE_KINDS))]
    assert kinds[: len(GARBAGE_KINDS)] == list(GARBAGE_KINDS)
    assert kinds.count("oversized") == 1  # the second turn came too soon
    later = [flood.kind_for(peer, 100.0 + OVERSIZED_INTERVAL_S) for _ in GARBAGE_KINDS]
    assert later.count("oversized") == 1
    # another peer has its own interval
    assert [flood.kind_for(b"q" * 32, 100.0) for _ in GARBAGE_KINDS].count("oversized") == 1


# ------------------------------------------------------------------ the hooked driver
class Sent:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, bytes]] = []
        self.done = asyncio.Event()

    def send(self, peer: bytes, frame: bytes) -> bool:
        self.frames.append((peer, frame))
        self.done.set()
        return True

    def messages(self) -> list[tuple[int, Message]]:
        out = []
        for peer, frame in self.frames:
            decoded = decode_frame(frame)
            assert isinstance(decoded, ConsensusFrame)
            out.append((PUBS.index(peer), decoded.message))
        return out


def driver(behaviour: Any, sent: Sent, me: int = 0) -> ByzantineDriver:
    hooks = DriverHooks(send=sent.send, on_block=lambda b, o: None, on_need_sync=lambda t, h: None)
    replica = SimpleNamespace(me=me)
    return ByzantineDriver(
        replica,
        None,
        None,
        PUBS,
        hooks,
        ThreadPoolExecutor(1),
        behaviour=behaviour,
        acts=Acts(lambda a, c: None),
    )


def test_the_driver_sends_what_the_behaviour_posts() -> None:
    sent = Sent()
    d = driver(twist("equivocate"), sent)
    pp = own_pre_prepare()
    d.transmit(Broadcast(pp))
    got = sent.messages()
    assert len(got) == 4 and {peer for peer, _ in got} == {1, 2, 3}
    assert len({m.proposal.digest() for _, m in got if isinstance(m, PrePrepare)}) == 2
    plan = split_plan(random.Random(1), (1, 2, 3))  # the behaviour's seed, its first draw
    assert d.acts.counts["sent other PrePrepare"] == sum(v for _, v in plan)
    assert d.acts.counts["withheld PrePrepare"] == 3 - len({p for p, v in plan if v == 0})
    # a Send goes to its one peer (never to ourselves); relayed requests pass unchanged
    sent.frames.clear()
    vote = signed(Prepare(0, 1, bytes(32), 0), 0)
    d.transmit(Send(2, vote))
    d.transmit(Send(0, vote))
    assert sent.messages() == [(2, vote)]
    sent.frames.clear()
    d.transmit(Relay(3, (b"request",)))
    assert [(PUBS.index(p), decode_frame(f)) for p, f in sent.frames] == [
        (3, TxsFrame([b"request"]))
    ]


def test_the_driver_shows_received_messages_to_the_behaviour_first() -> None:
    sent = Sent()
    d = driver(twist("vote_all", me=2), sent, me=2)
    pp = own_pre_prepare(me=0)
    d.submit_message(decode_message(encode_message(pp)))
    kinds = [(peer, type(m).__name__) for peer, m in sent.messages()]
    prepares = [(peer, "Prepare") for peer in (0, 1, 3)]
    commits = [(peer, "Commit") for peer in (0, 1, 3)]
    assert kinds == [*prepares, *commits]
    assert d.backlog == 1  # and the replica gets it too


async def test_a_delayed_message_leaves_later() -> None:
    sent = Sent()
    b = make_twist(
        Settings("delay", delay_ms=20), 0, CONFIG, KeySigner(KEYS[0]), RULES, max_frame_bytes=1024
    )
    d = driver(b, sent)
    vote = signed(Prepare(0, 1, bytes(32), 0), 0)
    d.transmit(Send(1, vote))
    assert sent.frames == [] and d.acts.counts["delayed Prepare"] == 1
    await asyncio.wait_for(sent.done.wait(), 5.0)
    assert sent.messages() == [(1, vote)]


# ------------------------------------------------------------------ the hooked transport
def transport(name: str) -> ByzantineTransport:
    return ByzantineTransport(
        KEYS[0],
        CHAIN,
        "127.0.0.1",
        0,
        allowed=set(PUBS),
        on_frame=lambda p, d: None,
        behaviour=twist(name),
        acts=Acts(lambda a, c: None),
    )


def test_status_frames_follow_the_behaviour() -> None:
    frame = encode_frame(StatusFrame(12, 3))
    assert transport("equivocate")._twist_status(frame) == frame
    lie = transport("status_lie")
    twisted = lie._twist_status(frame)
    assert twisted is not None and decode_frame(twisted) == StatusFrame(12 + LIE_HEIGHT, 3)
    assert lie._twist_status(frame) is twisted  # a broadcast's copies: twisted once
    assert lie.acts.counts["lied in StatusFrame"] == 1
    silent = transport("silent")
    assert silent._twist_status(frame) is None
    assert not silent.send(PUBS[1], frame) and silent.acts.counts["withheld StatusFrame"] == 1
    assert not silent.send(PUBS[1], encode_frame(BlocksFrame([b"x"])))
    assert silent.acts.counts["withheld BlocksFrame"] == 1
    # garbage goes as it is (a malformed status must not reach the twist)
    garbage = transport("garbage")
    bad_status = encode_frame(StatusFrame(-1, -1))
    assert not garbage.send_as_is(PUBS[1], bad_status)  # not linked: dropped, not raised
    assert not garbage.send_unchecked(PUBS[1], bytes(10))


def test_the_conflicting_digest_differs() -> None:
    d = bytes(32)
    assert conflicting_digest(d) != d and len(conflicting_digest(d)) == 32
    assert msgspec.structs.replace(Prepare(0, 1, d, 0), digest=conflicting_digest(d)).digest != d
