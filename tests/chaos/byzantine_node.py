"""A Byzantine validator process for the chaos suite: the real node, its sends twisted.

TEST-ONLY. This program lives in ``tests/`` and is never part of the shipped
``node`` package (``node/`` never imports ``tests/``:
``tests/unit/test_import_rule.py``). It runs exactly what ``hygeia start``
runs (``node.cli``'s command tree: the config loading, logging, signal
handling, clean shutdown and exit codes), as one validator, with its own key,
misbehaving in the way the environment names::

    CHAOS_BYZANTINE=equivocate python -m tests.chaos.byzantine_node start --home HOME

The functional tests start it as ``TestNetwork.start(i,
module="tests.chaos.byzantine_node", env={"CHAOS_BYZANTINE": "equivocate"})``
(``tests/functional/test_byzantine_process.py``). The variables are not
``HYGEIA_*`` ones, which the node's config loader reads.

Where the hook sits
-------------------
The replica stays the real, honest ``consensus.replica.Replica``, rebuilt from
its own records and persisting every vote before it leaves; only what reaches
the wire is twisted, as in the simulator. For this process only, the name
``node.cli.run.Node`` is patched to ``ByzantineNode``, a subclass of the
daemon's ``Node``, whose ``start`` runs the daemon's own ``start`` with two
parts swapped for subclasses (the names ``node.daemon.ConsensusDriver`` and
``node.daemon.Transport`` are patched while it builds them, then restored):

* ``ByzantineDriver`` (a ``node.engine.driver.ConsensusDriver``): ``transmit``
  is the edge where the driver's core hands each ``Send``/``Broadcast`` of the
  replica to the transport (``node.engine.core.carry_out``, after the round's
  synced write). Here each message goes to a ``node.sim.byzantine.Behaviour``
  instead, the very objects the simulator runs (``transmit(outbox, dsts,
  msg)``), and the driver is their ``Outbox``: ``post`` encodes a
  ``ConsensusFrame`` and hands it to the transport (``extra_delay`` through the
  event loop). ``submit_message`` shows every verified incoming message to the
  behaviour's ``observe`` first. Relayed requests pass unchanged.
* ``ByzantineTransport`` (a ``node.net.transport.Transport``): ``send`` gives
  the daemon's ``StatusFrame`` heights to the behaviour's ``status_height``
  (rewritten, or withheld when it says None) and withholds ``BlocksFrame``s of
  a behaviour that does not answer sync; ``send_unchecked`` queues a frame
  without the local size check (the garbage flood's oversized frames).

``ByzantineNode.start`` checks that both swaps took, so a rename in
``node/daemon.py`` fails the start loudly instead of running an honest node.
Behaviours sign with this node's key only (``KeySigner``): they lie, replay,
equivocate and garble, but cannot forge another validator's signature.

Behaviours (``SUPPORTED``; the functional tests run ``COVERED`` by default)
---------------------------------------------------------------------------
Every name of ``node.sim.scenario.BEHAVIOURS``, with ``node.sim.byzantine``'s
classes as they are, except:

* ``equivocate``: as ``node.sim.byzantine.Equivocate`` (a seeded random half of
  the peers gets a conflicting, correctly signed PRE-PREPARE of each proposal
  it broadcasts as primary, the rest the real one), and one random peer, the
  witness, then also gets the other version. In a 4-validator network the
  split alone leaves no honest replica holding both signed proposals of a
  height, so nobody could report it (the simulator's
  ``equivocating-primary`` scenario reports no evidence); the witness reports
  ``Evidence`` (PrePrepare), and its node scores this validator for it;

and two more that the simulator does not have:

* ``conflicting_votes``: each PREPARE and COMMIT of its own goes with a
  conflicting one (the same view and height, another digest, signed), split
  between the peers and witnessed as for ``equivocate``: ``Evidence``
  (Prepare; Commit only when both arrive before the height is delivered, since
  a replica ignores commits of delivered heights, so rarely);
* ``garbage``: honest consensus, plus a flood of malformed frames to every
  linked peer, ``CHAOS_BYZANTINE_RATE`` frames a second to each (bounded), in
  turn of ``GARBAGE_KINDS``: random bytes, a truncated frame, an unknown tag,
  a consensus frame that is not a message, a block range out of bounds, a
  negative status, an invalid gossiped transaction, a message in another
  validator's name, a bad signature, and at most every
  ``OVERSIZED_INTERVAL_S`` a frame one byte over the frame limit, which the
  transport would refuse to send (``send_unchecked``). Every frame is sealed
  in the link's real session (the content is the garbage) and sent as it is
  (``send_as_is``), past the status twist.

(``vote_all``, ``stale_view_change`` and the rest behave as documented in
``node/sim/byzantine.py``: ``stale_view_change`` replays its own old
messages, identical bytes and valid signatures.) ``COVERED`` are the ones the
default functional tests run; the others run there only under the ``chaos``
marker (``make chaos``).

Settings (environment)
----------------------
``CHAOS_BYZANTINE`` (required, one of ``SUPPORTED``), ``CHAOS_BYZANTINE_SEED``
(the behaviour's random choices; default 0), ``CHAOS_BYZANTINE_DELAY_MS``
(``delay``; default ``DEFAULT_DELAY_MS``), ``CHAOS_BYZANTINE_COUNT``
(``flood_views``: votes per flood; 0, the default: its own default),
``CHAOS_BYZANTINE_RATE`` (``garbage``: frames a second per peer; default
``DEFAULT_GARBAGE_RATE``). A bad value stops the program before the node
starts (exit status 2).

What the behaviour does is counted by act and logged as ``byzantine act`` at
the 1st, 2nd, 4th, 8th... of each act (``Acts``), so a test can see from the
node's log that it really misbehaved.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from unittest import mock

import msgspec
import structlog

import node.daemon as daemon
from consensus.actions import Relay, Send
from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Signer
from consensus.messages import Commit, Message, Prepare, PrePrepare
from node.cli import main as cli_main
from node.cli import run as cli_run
from node.core.keys import KeySigner
from node.engine.core import Outbound
from node.engine.driver import ConsensusDriver, wall_clock_ms
from node.net.transport import Transport
from node.net.wire import (
    ConsensusFrame,
    GetBlocksFrame,
    StatusFrame,
    TxsFrame,
    decode_frame,
    encode_frame,
)
from node.setup.config import ConfigError, NodeConfig
from node.sim.byzantine import Behaviour, Equivocate, Outbox, Signing, make_behaviour
from node.sim.scenario import BEHAVIOURS, ByzantineSpec

log = structlog.get_logger("hygeia.byzantine")

ENV_BEHAVIOUR = "CHAOS_BYZANTINE"
ENV_SEED = "CHAOS_BYZANTINE_SEED"
ENV_DELAY_MS = "CHAOS_BYZANTINE_DELAY_MS"
ENV_COUNT = "CHAOS_BYZANTINE_COUNT"
ENV_RATE = "CHAOS_BYZANTINE_RATE"

SUPPORTED: tuple[str, ...] = (*BEHAVIOURS, "conflicting_votes", "garbage")
# the behaviours the default functional tests run (tests/functional/test_byzantine_process.py);
# the others of SUPPORTED run there under the ``chaos`` marker only (``make chaos``)
COVERED: tuple[str, ...] = (
    "equivocate",
    "conflicting_votes",
    "vote_all",
    "stale_view_change",
    "garbage",
)

DEFAULT_DELAY_MS = 300
DEFAULT_GARBAGE_RATE = 20.0  # frames a second to each linked peer
MAX_GARBAGE_RATE = 1000.0
OVERSIZED_INTERVAL_S = 2.0  # at most one oversized frame per peer this often
GARBAGE_KINDS = (
    "random",
    "truncated",
    "unknown_tag",
    "bad_message",
    "bad_range",
    "negative_status",
    "junk_tx",
    "wrong_sender",
    "bad_signature",
    "oversized",
)


# ------------------------------------------------------------------ settings
class SettingsError(ValueError):
    """A ``CHAOS_BYZANTINE*`` variable that cannot be used (the message names it)."""


@dataclass(frozen=True)
class Settings:
    """What the environment asks of this Byzantine process (``settings_from_env``)."""

    behaviour: str
    seed: int = 0
    delay_ms: int = DEFAULT_DELAY_MS
    count: int = 0
    rate: float = DEFAULT_GARBAGE_RATE


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={value}: expected at least {minimum}")
    return value


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """The settings of the ``CHAOS_BYZANTINE*`` variables of ``env``; ``SettingsError``
    naming the variable when one is missing or bad."""
    name = env.get(ENV_BEHAVIOUR, "").strip()
    if name not in SUPPORTED:
        raise SettingsError(f"{ENV_BEHAVIOUR}={name!r}: expected one of {', '.join(SUPPORTED)}")
    raw_rate = env.get(ENV_RATE, "").strip()
    rate = DEFAULT_GARBAGE_RATE
    if raw_rate:
        try:
            rate = float(raw_rate)
        except ValueError:
            raise SettingsError(f"{ENV_RATE}={raw_rate!r}: expected a number") from None
        if not 0 < rate <= MAX_GARBAGE_RATE:
            raise SettingsError(f"{ENV_RATE}={rate:g}: expected > 0 and <= {MAX_GARBAGE_RATE:g}")
    return Settings(
        behaviour=name,
        seed=_int(env, ENV_SEED, 0, 0),
        delay_ms=_int(env, ENV_DELAY_MS, DEFAULT_DELAY_MS, 1),
        count=_int(env, ENV_COUNT, 0, 0),
        rate=rate,
    )


# ------------------------------------------------------------------ acts
class Acts:
    """What the Byzantine node did, counted by act; the 1st, 2nd, 4th, 8th... of each
    is reported to ``emit(act, count)`` (by default a ``byzantine act`` log warning)."""

    def __init__(self, emit: Callable[[str, int], None] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self._emit = emit or _log_act

    def note(self, act: str, k: int = 1) -> None:
        before = self.counts[act]
        after = before + k
        self.counts[act] = after
        if before == 0 or before.bit_length() != after.bit_length():
            self._emit(act, after)


def _log_act(act: str, count: int) -> None:
    log.warning("byzantine act", act=act, count=count)


# ------------------------------------------------------------------ behaviours
def split_plan(rng: random.Random, dsts: Sequence[int]) -> list[tuple[int, int]]:
    """Who gets which version of a message, in sending order: ``(dst, 0)`` the
    message as made, ``(dst, 1)`` the conflicting one. As in
    ``node.sim.byzantine.Equivocate``, a seeded random half (rounded down) of
    ``dsts`` gets 1 and the rest 0; then one random destination, the witness,
    also gets the version it did not get, so one peer holds both."""
    shuffled = list(dsts)
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    plan = [(d, 1 if i < half else 0) for i, d in enumerate(shuffled)]
    if plan:
        witness, version = plan[rng.randrange(len(plan))]
        plan.append((witness, 1 - version))
    return plan


def conflicting_digest(digest: bytes) -> bytes:
    """A digest other than ``digest`` (of the same length when it is 32 bytes)."""
    return hashlib.sha256(b"conflicting-vote:" + digest).digest()


class WitnessedEquivocate(Equivocate):
    """``Equivocate`` whose split has a witness (``split_plan``): see the module docstring."""

    name = "equivocate"

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, PrePrepare) and self.own(msg) and len(dsts) > 1):
            super().transmit(out, dsts, msg)  # passed on as made
            return
        versions = (msg, self.conflicting(msg))
        for d, version in split_plan(self.rng, dsts):
            out.post(self.me, d, versions[version], 0)


class ConflictingVotes(Signing):
    """Each own PREPARE and COMMIT with a conflicting one, split and witnessed."""

    name = "conflicting_votes"

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, rng: random.Random
    ) -> None:
        super().__init__(me, config, signer)
        self.rng = rng

    def conflicting(self, vote: Prepare | Commit) -> Message:
        digest = conflicting_digest(vote.digest)
        if isinstance(vote, Prepare):
            return self.sign(msgspec.structs.replace(vote, digest=digest))
        return self.sign(msgspec.structs.replace(vote, digest=digest))

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, Prepare | Commit) and self.own(msg)):
            super().transmit(out, dsts, msg)
            return
        versions = (msg, self.conflicting(msg))
        for d, version in split_plan(self.rng, dsts):
            out.post(self.me, d, versions[version], 0)


class Garbage(Behaviour):
    """Honest consensus; the flood of malformed frames is ``GarbageFlood``'s."""

    name = "garbage"


def make_twist(
    settings: Settings,
    me: int,
    config: ConsensusConfig,
    signer: Signer,
    rules: PayloadRules,
    *,
    max_frame_bytes: int,
) -> Behaviour:
    """The behaviour object of ``settings.behaviour`` for validator ``me``."""
    rng = random.Random(settings.seed)
    kind = settings.behaviour
    if kind == "equivocate":
        return WitnessedEquivocate(me, config, signer, rules, rng)
    if kind == "conflicting_votes":
        return ConflictingVotes(me, config, signer, rng)
    if kind == "garbage":
        return Garbage(me)
    spec = ByzantineSpec(me, kind, delay_ms=settings.delay_ms, count=settings.count)
    return make_behaviour(spec, config, signer, rules, rng, max_frame_bytes=max_frame_bytes)


# ------------------------------------------------------------------ garbage
def frame_tag(data: bytes) -> str | None:
    """The tag of an encoded ``node.net.wire`` frame (a msgpack array whose first item
    is the tag, a short string), read from its first bytes; None if they are not so."""
    if len(data) < 2 or not 0x91 <= data[0] <= 0x9F or not 0xA1 <= data[1] <= 0xBF:
        return None
    size = data[1] - 0xA0
    tag = data[2 : 2 + size]
    if len(tag) != size:
        return None
    return tag.decode("ascii", "replace")


class GarbageMaker:
    """Malformed frames of each of ``GARBAGE_KINDS`` (``make``); what an honest node
    does with each is in the module docstring of ``node/daemon.py``."""

    def __init__(
        self, rng: random.Random, me: int, n: int, max_frame_bytes: int, sig_len: int = 64
    ) -> None:
        self.rng = rng
        self.me = me
        self.n = n
        self.max_frame_bytes = max_frame_bytes
        self.sig_len = sig_len
        self._oversized: bytes | None = None

    def _bytes(self, k: int) -> bytes:
        return self.rng.randbytes(k)

    def _vote(self, sender: int) -> Prepare:
        return Prepare(0, 1, self._bytes(32), sender, self._bytes(self.sig_len))

    def make(self, kind: str) -> bytes:
        rng = self.rng
        if kind == "random":
            return self._bytes(rng.randint(1, 256))
        if kind == "truncated":
            whole = encode_frame(TxsFrame([self._bytes(64)]))
            return whole[: rng.randint(1, len(whole) - 1)]
        if kind == "unknown_tag":
            return msgspec.msgpack.encode(["zz", rng.randint(0, 1 << 30), self._bytes(8)])
        if kind == "bad_message":
            return msgspec.msgpack.encode(["c", ["prepare", "not a view", self._bytes(4)]])
        if kind == "bad_range":
            return encode_frame(GetBlocksFrame(0, 1 << 20))
        if kind == "negative_status":
            return encode_frame(StatusFrame(-rng.randint(1, 1 << 20), -1))
        if kind == "junk_tx":
            return encode_frame(TxsFrame([self._bytes(rng.randint(1, 128))]))
        if kind == "wrong_sender":
            other = (self.me + rng.randint(1, self.n - 1)) % self.n if self.n > 1 else self.me + 1
            return encode_frame(ConsensusFrame(self._vote(other)))
        if kind == "bad_signature":
            return encode_frame(ConsensusFrame(self._vote(self.me)))
        if kind == "oversized":
            if self._oversized is None:  # built once: a frame of the limit costs memory
                self._oversized = bytes(self.max_frame_bytes + 1)
            return self._oversized
        raise ValueError(f"unknown garbage kind {kind!r}")


class GarbageFlood:
    """Sends ``GarbageMaker`` frames to every linked peer, ``rate`` a second to each,
    the kinds in turn; an oversized frame at most every ``OVERSIZED_INTERVAL_S`` per
    peer (a ``random`` one in its place otherwise)."""

    def __init__(
        self, transport: ByzantineTransport, maker: GarbageMaker, rate: float, acts: Acts
    ) -> None:
        self.transport = transport
        self.maker = maker
        self.interval = 1.0 / rate
        self.acts = acts
        self._turn = 0
        self._last_oversized: dict[bytes, float] = {}

    def kind_for(self, peer: bytes, now: float) -> str:
        kind = GARBAGE_KINDS[self._turn % len(GARBAGE_KINDS)]
        self._turn += 1
        if kind == "oversized":
            last = self._last_oversized.get(peer)
            if last is not None and now - last < OVERSIZED_INTERVAL_S:
                return "random"
            self._last_oversized[peer] = now
        return kind

    def tick(self, now: float) -> None:
        for peer in self.transport.connected():
            kind = self.kind_for(peer, now)
            data = self.maker.make(kind)
            if kind == "oversized":
                sent = self.transport.send_unchecked(peer, data)
            else:
                sent = self.transport.send_as_is(peer, data)
            if sent:
                self.acts.note(f"garbage {kind}")

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval)
                self.tick(time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must show, and must not take the node down
            log.exception("byzantine garbage flood failed")


# ------------------------------------------------------------------ the hooked parts
class ByzantineDriver(ConsensusDriver):
    """The daemon's driver whose outgoing consensus messages go through ``behaviour``
    (it is the behaviour's ``Outbox``); see the module docstring."""

    def __init__(self, *args: Any, behaviour: Behaviour, acts: Acts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.acts = acts
        # a Byzantine node is a validator of genesis's set, and stays in epoch 0: the
        # daemon's EpochSwitch (its replica of epoch 0), or a replica and its keys
        replica = cast(Any, self.replica)
        if hasattr(replica, "schedule"):
            me = replica.replica.me
            self.validator_ids = list(replica.schedule.epochs[0].validators)
        else:
            me = replica.me
            self.validator_ids = list(args[3] if len(args) > 3 else kwargs["peers"])
        self.me = me
        self.peers = tuple(i for i in range(len(self.validator_ids)) if i != me)
        self._made: Message | None = None  # the replica's message being transmitted
        self._given: set[int] = set()  # peers that got it as made
        self._encoded: tuple[Message, bytes] | None = None

    def transmit(self, action: Outbound) -> None:
        if isinstance(action, Relay):
            super().transmit(action)
            return
        if isinstance(action, Send):
            if not 0 <= action.to < len(self.validator_ids) or action.to == self.me:
                return
            dsts: tuple[int, ...] = (action.to,)
        else:
            dsts = self.peers
        msg = action.message
        self._made, self._given = msg, set()
        try:
            self.behaviour.transmit(self, dsts, msg)
        finally:
            self._made = None
        withheld = len(dsts) - len(self._given)
        if withheld:
            self.acts.note(f"withheld {type(msg).__name__}", withheld)

    def submit_message(self, msg: Message, epoch: int = 0) -> None:
        self.behaviour.observe(self, self.peers, msg)
        super().submit_message(msg, epoch)

    # the Outbox protocol of node.sim.byzantine
    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None:
        if not 0 <= dst < len(self.validator_ids) or dst == self.me:
            return
        kind = type(msg).__name__
        if msg is self._made:
            self._given.add(dst)
        else:
            self.acts.note(f"sent other {kind}")
        if extra_delay > 0:
            self.acts.note(f"delayed {kind}")
        encoded = self._encoded
        if encoded is None or encoded[0] is not msg:
            encoded = self._encoded = (msg, encode_frame(ConsensusFrame(msg)))
        frame = encoded[1]
        self.hooks.observer.message_out(kind, 1)
        peer = self.validator_ids[dst]
        if extra_delay > 0:
            loop = asyncio.get_running_loop()
            loop.call_later(extra_delay / 1000, self.hooks.send, peer, frame)
        else:
            self.hooks.send(peer, frame)


class ByzantineTransport(Transport):
    """The daemon's transport whose status and block frames follow ``behaviour``."""

    def __init__(self, *args: Any, behaviour: Behaviour, acts: Acts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.behaviour = behaviour
        self.acts = acts
        self._status: tuple[bytes, bytes | None] | None = None  # last (as made, as sent)

    def send(self, peer_id: bytes, data: bytes) -> bool:
        tag = frame_tag(data)
        if tag == "s":
            twisted = self._twist_status(data)
            if twisted is None:
                self.acts.note("withheld StatusFrame")
                return False
            data = twisted
        elif tag == "b" and not self.behaviour.answers_sync:
            self.acts.note("withheld BlocksFrame")
            return False
        return super().send(peer_id, data)

    def _twist_status(self, data: bytes) -> bytes | None:
        cached = self._status
        if cached is not None and cached[0] == data:
            return cached[1]
        frame = decode_frame(data)
        assert isinstance(frame, StatusFrame)
        height = self.behaviour.status_height(frame.height)
        out: bytes | None
        if height is None:
            out = None
        elif height == frame.height:
            out = data
        else:
            self.acts.note("lied in StatusFrame")
            out = encode_frame(StatusFrame(height, frame.view))
        self._status = (data, out)
        return out

    def send_as_is(self, peer_id: bytes, data: bytes) -> bool:
        """``Transport.send`` of ``data`` as it is (not a frame the daemon made)."""
        return super().send(peer_id, data)

    def send_unchecked(self, peer_id: bytes, data: bytes) -> bool:
        """Queue ``data`` for ``peer_id`` without ``send``'s size check (False: no link)."""
        peer = self._peers.get(peer_id)
        if peer is None or peer.link is None:
            return False
        return peer.offer(data)


class ByzantineNode(daemon.Node):
    """The daemon's ``Node`` with a ``ByzantineDriver`` and a ``ByzantineTransport``."""

    def __init__(self, cfg: NodeConfig, *, settings: Settings, clock: Any = wall_clock_ms) -> None:
        super().__init__(cfg, clock=clock)
        if self.me is None:
            raise ConfigError(
                f"{ENV_BEHAVIOUR}: a Byzantine node must be a validator of genesis "
                f"(this node's key {self.node_id.hex()[:16]} is not)"
            )
        self.settings = settings
        self.acts = Acts()
        self._behaviour: Behaviour | None = None
        self._flood: asyncio.Task[None] | None = None

    @property
    def behaviour(self) -> Behaviour:
        """Built once, when ``start`` makes the transport (the rules exist by then)."""
        if self._behaviour is None:
            assert self.me is not None
            self._behaviour = make_twist(
                self.settings,
                self.me,
                self.consensus_config,
                KeySigner(self.key),
                self.rules,
                max_frame_bytes=self.cfg.p2p.max_frame_bytes,
            )
        return self._behaviour

    def _make_transport(self, *args: Any, **kwargs: Any) -> Transport:
        return ByzantineTransport(*args, behaviour=self.behaviour, acts=self.acts, **kwargs)

    def _make_driver(self, *args: Any, **kwargs: Any) -> ConsensusDriver:
        return ByzantineDriver(*args, behaviour=self.behaviour, acts=self.acts, **kwargs)

    async def start(self) -> None:
        log.warning(
            "BYZANTINE test process: this node misbehaves on purpose",
            behaviour=self.settings.behaviour,
            seed=self.settings.seed,
        )
        with (
            mock.patch.object(daemon, "Transport", self._make_transport),
            mock.patch.object(daemon, "ConsensusDriver", self._make_driver),
        ):
            await super().start()
        if not isinstance(self.transport, ByzantineTransport) or not isinstance(
            self.driver, ByzantineDriver
        ):
            raise RuntimeError(
                "the Byzantine hooks did not take: node.daemon.Node.start no longer builds "
                "its parts through the names Transport and ConsensusDriver"
            )
        if self.settings.behaviour == "garbage":
            assert self.me is not None
            maker = GarbageMaker(
                random.Random(self.settings.seed),
                self.me,
                len(self.validator_ids),
                self.cfg.p2p.max_frame_bytes,
            )
            flood = GarbageFlood(self.transport, maker, self.settings.rate, self.acts)
            self._flood = asyncio.create_task(flood.run(), name="byzantine-garbage")

    async def stop(self) -> None:
        if self._flood is not None:
            self._flood.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flood
            self._flood = None
        await super().stop()


def main() -> None:
    """``python -m tests.chaos.byzantine_node start --home HOME`` (``hygeia``'s commands)."""
    try:
        settings = settings_from_env(os.environ)
    except SettingsError as exc:
        print(f"byzantine_node: {exc}", file=sys.stderr)
        sys.exit(2)
    node_class = functools.partial(ByzantineNode, settings=settings)
    with mock.patch.object(cli_run, "Node", node_class):
        cli_main.main(prog_name="byzantine_node")


if __name__ == "__main__":
    main()
