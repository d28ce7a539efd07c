"""Byzantine behaviours: how a faulty node twists what its (real) replica sends.

A Byzantine node runs the real replica with its own key; its behaviour sits
between the replica and the network. ``transmit`` decides what actually goes
out for each message the replica sends, ``observe`` may react to what comes
in, ``status_height`` says what it announces in the daemon's height
announcements (``status_sync``). Behaviours sign with the node's own signer
only: they can lie, stay silent, replay, pad or garble, but never forge
another validator's signature (a message in another validator's name carries
a signature that does not verify).

Normal case:

- ``equivocate``: a PrePrepare it broadcasts goes out as proposed to some
  peers and as a conflicting proposal (another payload and timestamp,
  correctly signed) to the others (a seeded random half).
- ``silent``: sends nothing, announces no height and answers no sync request.
- ``vote_all``: on every PrePrepare it receives, broadcasts a signed Prepare
  and Commit for it, whatever its replica thinks.
- ``bad_sig``: every outbound message carries a corrupted signature.
- ``delay``: every outbound message leaves ``delay_ms`` late.

View change, checkpoints, sizes and memory:

- ``forge_view_change``: each VIEW-CHANGE it sends is replaced, per
  destination, by a forgery signed by itself (``FORGED_VIEW_CHANGES``): a
  stable checkpoint it cannot prove, a tampered checkpoint proof, a prepared
  certificate with a changed payload root or prepares of another digest,
  bogus heights, a made-up certificate, or (legal, but a lie) no certificates.
- ``stale_view_change``: sends what its replica sends, and every few messages
  also replays one of its own VIEW-CHANGEs/NEW-VIEWs of a view it has left and
  a random old message of its own (identical bytes, valid signatures).
- ``oversized``: on each of its VIEW-CHANGEs, NEW-VIEWs and checkpoints (and
  every 16th message) sends a message padded past the frame limit (junk
  prepared certificates, a huge checkpoint proof, a NEW-VIEW full of junk, a
  checkpoint with a huge state root; the network drops it) and one padded to
  just under it, the same object every time (heavy but deliverable: it
  exercises the replicas' signature caches).
- ``forge_new_view``: as primary of a new view, sends per destination a
  NEW-VIEW whose re-proposals differ from the selection
  (``FORGED_NEW_VIEWS``): a changed value, a missing height, an empty block
  where a prepared value belongs, an invented value, a VIEW-CHANGE short of a
  quorum.
- ``bad_checkpoint``: instead of each of its CHECKPOINTs sends one with a
  wrong state root, one for a height that is not a multiple of K, one far in
  the future, and checkpoints with junk roots for many distinct heights.
- ``flood_views``: on its first ``FLOOD_BURSTS`` COMMITs, sends ``count``
  COMMITs and PREPAREs of distinct views for that height (near and far
  future) and PRE-PREPAREs for many future views it is primary of: the
  memory attack of one validator sending 200,000 votes of distinct views.
- ``status_lie``: announces a height ``LIE_HEIGHT`` above its real one, in the
  daemon's height announcements and in the replica's own Status messages;
  otherwise honest (it answers sync requests with the blocks it has).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

import msgspec

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Signer
from consensus.messages import (
    Checkpoint,
    Commit,
    Message,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Proposal,
    Signed,
    Status,
    ViewChange,
    sign_message,
)
from node.sim.network import FrameLimit
from node.sim.scenario import DEFAULT_MAX_FRAME_BYTES, ByzantineSpec

_M = TypeVar("_M", bound=msgspec.Struct)

# what a status_lie node claims above its real height
LIE_HEIGHT = 1 << 40
# the first views of flood_views's far-future votes
FAR_VIEW = 1 << 40
# COMMITs of flood_views that trigger a flood; votes per flood unless ``count`` says
FLOOD_BURSTS = 2
FLOOD_COUNT = 500
FORGED_VIEW_CHANGES = (
    "unproven_stable",
    "tampered_proof",
    "changed_root",
    "changed_digest",
    "bogus_height",
    "fake_cert",
    "omit_certs",
)
FORGED_NEW_VIEWS = (
    "changed_value",
    "missing_height",
    "empty_for_value",
    "invented_value",
    "short_quorum",
)


class Outbox(Protocol):
    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None: ...


def _flip(data: bytes) -> bytes:
    """``data`` with its first byte changed (a 32-byte junk value if empty)."""
    return bytes([data[0] ^ 0xFF]) + data[1:] if data else b"\xa5" * 32


def _junk(tag: str, i: int) -> bytes:
    return hashlib.sha256(f"{tag}/{i}".encode()).digest()


class Behaviour:
    """Honest pass-through; subclasses override what they twist."""

    name = "honest"
    answers_sync = True

    def __init__(self, me: int) -> None:
        self.me = me

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        for d in dsts:
            out.post(self.me, d, msg, 0)

    def observe(self, out: Outbox, peers: Sequence[int], msg: Message) -> None:
        return None

    def status_height(self, height: int) -> int | None:
        """The height announced to peers (None: announce nothing)."""
        return height


class Silent(Behaviour):
    name = "silent"
    answers_sync = False

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        return None

    def status_height(self, height: int) -> int | None:
        return None


class Delay(Behaviour):
    name = "delay"

    def __init__(self, me: int, delay_ms: int) -> None:
        super().__init__(me)
        self.delay_ms = delay_ms

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        for d in dsts:
            out.post(self.me, d, msg, self.delay_ms)


class BadSig(Behaviour):
    name = "bad_sig"

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        sig = msg.sig
        bad = bytes([sig[0] ^ 0xFF]) + sig[1:] if sig else b"\x00" * 16
        forged = msgspec.structs.replace(msg, sig=bad)
        for d in dsts:
            out.post(self.me, d, forged, 0)


class Signing(Behaviour):
    """A behaviour that builds and signs messages of its own."""

    def __init__(self, me: int, config: ConsensusConfig, signer: Signer) -> None:
        super().__init__(me)
        self.config = config
        self.chain_id = config.chain_id
        self.signer = signer
        # the length of our signatures: a junk signature in another's name has it too
        self.sig_len = len(signer.sign(b""))

    def sign(self, m: Signed) -> Signed:
        return sign_message(m, self.signer.sign, self.chain_id)

    def own(self, msg: Message) -> bool:
        return msg.sender == self.me

    def unsigned_in_name_of(self, m: _M, sender: int) -> _M:
        """``m`` in ``sender``'s name with a signature that cannot verify."""
        return msgspec.structs.replace(m, sender=sender, sig=b"\x00" * self.sig_len)

    def primary_view_below(self, view: int) -> int:
        """The highest view below ``view`` we are primary of (-1: none)."""
        n = self.config.n
        v = view - 1 - ((view - 1 - self.me) % n)
        return v if v >= 0 else -1

    def primary_view_above(self, view: int) -> int:
        """The lowest view above ``view`` we are primary of."""
        n = self.config.n
        return view + 1 + ((self.me - view - 1) % n)


class Equivocate(Signing):
    name = "equivocate"

    def __init__(
        self,
        me: int,
        config: ConsensusConfig,
        signer: Signer,
        rules: PayloadRules,
        rng: random.Random,
    ) -> None:
        super().__init__(me, config, signer)
        self.rules = rules
        self.rng = rng

    def conflicting(self, pp: PrePrepare) -> PrePrepare:
        payload = pp.payload[:-1]
        p = pp.proposal
        proposal = Proposal(
            p.chain_id, p.height, p.timestamp + 1, p.proposer, self.rules.payload_root(payload)
        )
        return self.sign(PrePrepare(pp.view, proposal, payload, pp.sender))

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, PrePrepare) and msg.sender == self.me and len(dsts) > 1):
            super().transmit(out, dsts, msg)
            return
        other = self.conflicting(msg)
        shuffled = list(dsts)
        self.rng.shuffle(shuffled)
        half = len(shuffled) // 2
        for i, d in enumerate(shuffled):
            out.post(self.me, d, other if i < half else msg, 0)


class VoteAll(Signing):
    name = "vote_all"

    def observe(self, out: Outbox, peers: Sequence[int], msg: Message) -> None:
        if not isinstance(msg, PrePrepare):
            return
        digest = msg.proposal.digest()
        prepare = self.sign(Prepare(msg.view, msg.height, digest, self.me))
        commit = self.sign(Commit(msg.view, msg.height, digest, self.me))
        for d in peers:
            out.post(self.me, d, prepare, 0)
        for d in peers:
            out.post(self.me, d, commit, 0)


class ForgeViewChange(Signing):
    name = "forge_view_change"

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, rules: PayloadRules
    ) -> None:
        super().__init__(me, config, signer)
        self.empty_root = rules.payload_root(())
        self._next = 0
        self._bogus = 0

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, ViewChange) and self.own(msg)):
            super().transmit(out, dsts, msg)
            return
        for d in dsts:
            kind = FORGED_VIEW_CHANGES[self._next % len(FORGED_VIEW_CHANGES)]
            self._next += 1
            out.post(self.me, d, self.forge(msg, kind), 0)

    def forge(self, vc: ViewChange, kind: str) -> ViewChange:
        """A VIEW-CHANGE like ``vc`` with the lie ``kind`` (one of FORGED_VIEW_CHANGES)."""
        replace = msgspec.structs.replace
        K = self.config.checkpoint_interval
        if kind == "unproven_stable" or (kind == "tampered_proof" and not vc.checkpoint_proof):
            # a stable checkpoint one interval above the real one, with a proof in
            # which only our own checkpoint is signed
            h = vc.stable_height + K
            forged = self._proof(h, _junk("forged-root", h))
            return self.sign(
                replace(
                    vc,
                    stable_height=h,
                    stable_root=forged[0].state_root,
                    checkpoint_proof=forged,
                    prepared=(),
                )
            )
        if kind == "tampered_proof":
            root = _flip(vc.stable_root)
            proof = tuple(
                self.sign(Checkpoint(c.height, root, self.me))
                if c.sender == self.me
                else replace(c, state_root=root)
                for c in vc.checkpoint_proof
            )
            return self.sign(replace(vc, stable_root=root, checkpoint_proof=proof))
        if kind in ("changed_root", "changed_digest"):
            certs = list(vc.prepared) or [self._fake_cert(vc)]
            c = certs[0]
            if kind == "changed_root":
                pp = c.pre_prepare
                proposal = replace(pp.proposal, payload_root=_flip(pp.proposal.payload_root))
                certs[0] = PreparedCert(replace(pp, proposal=proposal), c.prepares)
            else:
                prepares = tuple(replace(p, digest=_flip(p.digest)) for p in c.prepares)
                certs[0] = PreparedCert(c.pre_prepare, prepares)
            return self.sign(replace(vc, prepared=tuple(certs)))
        if kind == "bogus_height":
            self._bogus += 1
            which = self._bogus % 3
            if which == 0:  # not a checkpoint height
                return self.sign(replace(vc, stable_height=vc.stable_height + 1))
            if which == 1:  # a negative one
                return self.sign(
                    replace(vc, stable_height=-K, stable_root=b"", checkpoint_proof=())
                )
            # a certificate far beyond the watermark window
            cert = (list(vc.prepared) or [self._fake_cert(vc)])[0]
            pp = cert.pre_prepare
            far = replace(pp, proposal=replace(pp.proposal, height=vc.stable_height + (1 << 30)))
            return self.sign(replace(vc, prepared=(PreparedCert(far, cert.prepares),)))
        if kind == "fake_cert":
            return self.sign(replace(vc, prepared=(*vc.prepared, self._fake_cert(vc))))
        # omit_certs: legal, and a lie (a prepared value it knows of is not reported)
        return self.sign(replace(vc, prepared=()))

    def _proof(self, h: int, root: bytes) -> tuple[Checkpoint, ...]:
        """A quorum-sized checkpoint proof of (h, root) of which only our own is signed."""
        q = self.config.quorum
        senders = [self.me, *[s for s in range(self.config.n) if s != self.me][: q - 1]]
        proof = [
            self.sign(Checkpoint(h, root, s))
            if s == self.me
            else self.unsigned_in_name_of(Checkpoint(h, root, s), s)
            for s in sorted(senders)
        ]
        return tuple(proof)

    def _fake_cert(self, vc: ViewChange) -> PreparedCert:
        """A prepared certificate made up above everything ``vc`` reports: our own
        pre-prepare (signed, in the last view below the new one we led) and
        prepares in the others' names that do not verify."""
        h = max([vc.stable_height, *(c.pre_prepare.height for c in vc.prepared)]) + 1
        view = max(self.primary_view_below(vc.new_view), 0)
        proposal = Proposal(self.chain_id, h, 0, self.me, _junk("fake-cert", h))
        pp = self.sign(PrePrepare(view, proposal, (), self.me))
        digest = proposal.digest()
        others = [s for s in range(self.config.n) if s != self.me][: self.config.quorum - 1]
        prepares = tuple(self.unsigned_in_name_of(Prepare(view, h, digest, s), s) for s in others)
        return PreparedCert(pp, prepares)


class StaleViewChange(Signing):
    name = "stale_view_change"
    REPLAY_EVERY = 4
    KEEP_VIEWS = 16
    KEEP_HISTORY = 64

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, rng: random.Random
    ) -> None:
        super().__init__(me, config, signer)
        self.rng = rng
        self.views: list[ViewChange | NewView] = []  # own, oldest first
        self.history: list[Message] = []  # recent own messages of other kinds
        self._calls = 0
        self._k = 0
        self.replayed = 0

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        super().transmit(out, dsts, msg)
        if not self.own(msg):
            return
        self._calls += 1
        if self._calls % self.REPLAY_EVERY == 0:
            self._replay(out, dsts)
        if isinstance(msg, ViewChange | NewView):
            if not self.views or self.views[-1] is not msg:
                self.views.append(msg)
                del self.views[: -self.KEEP_VIEWS]
        else:
            self.history.append(msg)
            del self.history[: -self.KEEP_HISTORY]

    def _replay(self, out: Outbox, dsts: Sequence[int]) -> None:
        newest = self.views[-1] if self.views else None
        stale = [m for m in self.views if _view_of(m) < _view_of(newest)] if newest else []
        picks: list[Message] = []
        if stale:
            picks.append(stale[self._k % len(stale)])
            self._k += 1
        if self.history:
            picks.append(self.history[self.rng.randrange(len(self.history))])
        for m in picks:
            self.replayed += 1
            for d in dsts:
                out.post(self.me, d, m, 0)


def _view_of(m: ViewChange | NewView | None) -> int:
    if isinstance(m, ViewChange):
        return m.new_view
    return -1 if m is None else m.view


class Oversized(Signing):
    name = "oversized"
    EVERY = 16
    KINDS = ("view_change_certs", "view_change_proof", "new_view", "checkpoint")

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, max_frame_bytes: int
    ) -> None:
        super().__init__(me, config, signer)
        self.frames = FrameLimit(max_frame_bytes)
        self.limit = max_frame_bytes
        self.view = 0
        self.height = 0
        self._calls = 0
        self._kind = 0
        # (kind, over) -> the padded message, built once and re-sent as the same object
        self._made: dict[tuple[str, bool], Message] = {}

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        super().transmit(out, dsts, msg)
        if not self.own(msg):
            return
        self._track(msg)
        self._calls += 1
        if isinstance(msg, ViewChange | NewView | Checkpoint) or self._calls % self.EVERY == 0:
            kind = self.KINDS[self._kind % len(self.KINDS)]
            self._kind += 1
            over = self.padded(kind, over=True)
            under = self.padded(kind, over=False)
            for d in dsts:
                out.post(self.me, d, over, 0)
                out.post(self.me, d, under, 0)

    def _track(self, msg: Message) -> None:
        if isinstance(msg, Prepare | Commit | PrePrepare | NewView | Status):
            self.view = max(self.view, msg.view)
        elif isinstance(msg, ViewChange):
            self.view = max(self.view, msg.new_view)
        if isinstance(msg, Commit | Prepare | Checkpoint):
            self.height = max(self.height, msg.height)

    def padded(self, kind: str, *, over: bool) -> Message:
        """A message of ``kind`` whose frame is just above (``over``) or at most
        the frame limit, padded with junk of one repeated shape."""
        key = (kind, over)
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._pad(self._maker(kind), over)
        return made

    def _maker(self, kind: str) -> Callable[[int], Message]:
        cfg = self.config
        K = cfg.checkpoint_interval
        view = self.view + 1
        me = self.me
        q = cfg.quorum
        if kind == "view_change_certs":
            pp = PrePrepare(0, Proposal(self.chain_id, 1, 0, me, bytes(32)), (), me)
            pp = self.sign(pp)
            prepares = tuple(
                self.unsigned_in_name_of(Prepare(0, 1, bytes(32), s), s) for s in range(q - 1)
            )
            cert = PreparedCert(pp, prepares)
            return lambda k: self.sign(ViewChange(view, 0, b"", (), (cert,) * k, me))
        if kind == "view_change_proof":
            root = _junk("proof", 0)
            cp = self.sign(Checkpoint(K, root, me))
            return lambda k: self.sign(ViewChange(view, K, root, (cp,) * k, (), me))
        if kind == "new_view":
            nv_view = self.primary_view_above(self.view)
            vc = self.sign(ViewChange(nv_view, 0, b"", (), (), me))
            return lambda k: self.sign(NewView(nv_view, (vc,) * k, (), me))
        h = (self.height // K + 1) * K
        return lambda k: self.sign(Checkpoint(h, b"\x00" * k, me))

    def _pad(self, make: Callable[[int], Message], over: bool) -> Message:
        size = self.frames.frame_size
        target = self.limit + 1 if over else self.limit
        base = size(make(0))
        per64 = max(1, size(make(64)) - base)  # bytes of 64 units of padding
        k = max(0, (target - base) * 64 // per64)
        msg = make(k)
        while size(msg) > target and k > 0:
            k -= 1 + (size(msg) - target) // 1024
            k = max(k, 0)
            msg = make(k)
        while size(msg) < target and (over or size(make(k + 1)) <= target):
            k += 1
            msg = make(k)
        return msg


class ForgeNewView(Signing):
    name = "forge_new_view"

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, rules: PayloadRules
    ) -> None:
        super().__init__(me, config, signer)
        self.empty_root = rules.payload_root(())
        self.rules = rules
        self._next = 0

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, NewView) and self.own(msg)):
            super().transmit(out, dsts, msg)
            return
        for d in dsts:
            kind = FORGED_NEW_VIEWS[self._next % len(FORGED_NEW_VIEWS)]
            self._next += 1
            out.post(self.me, d, self.forge(msg, kind), 0)

    def forge(self, nv: NewView, kind: str) -> NewView:
        """A NEW-VIEW like ``nv`` whose content departs from the selection (``kind``)."""
        replace = msgspec.structs.replace
        if kind == "short_quorum" and nv.view_changes:
            return self.sign(replace(nv, view_changes=nv.view_changes[:-1]))
        pps = list(nv.pre_prepares)
        values = [i for i, pp in enumerate(pps) if pp.proposal.payload_root != self.empty_root]
        if kind == "changed_value" and values:
            pp = pps[values[0]]
            proposal = replace(pp.proposal, timestamp=pp.proposal.timestamp + 1)
            pps[values[0]] = self.sign(replace(pp, proposal=proposal))
        elif kind == "missing_height" and pps:
            del pps[len(pps) // 2]
        elif kind == "empty_for_value" and values:
            p = pps[values[0]].proposal
            empty = Proposal(self.chain_id, p.height, p.timestamp, self.me, self.empty_root)
            pps[values[0]] = self.sign(PrePrepare(nv.view, empty, (), self.me))
        else:  # invented_value (and the fallback when the selection has no value)
            stable = max((vc.stable_height for vc in nv.view_changes), default=0)
            h = pps[0].height if pps else stable + 1
            ts = pps[0].proposal.timestamp if pps else 0
            root = self.rules.payload_root((b"tx:forged-by-new-view:" + bytes([self.me]),))
            pp = self.sign(
                PrePrepare(nv.view, Proposal(self.chain_id, h, ts, self.me, root), (), self.me)
            )
            if pps:
                pps[0] = pp
            else:
                pps.append(pp)
        return self.sign(replace(nv, pre_prepares=tuple(pps)))


class BadCheckpoint(Signing):
    name = "bad_checkpoint"

    def __init__(self, me: int, config: ConsensusConfig, signer: Signer) -> None:
        super().__init__(me, config, signer)
        # checkpoint height -> what goes out instead (the same objects when repeated)
        self._made: dict[int, tuple[Checkpoint, ...]] = {}

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if not (isinstance(msg, Checkpoint) and self.own(msg)):
            super().transmit(out, dsts, msg)
            return
        for m in self.lies(msg):
            for d in dsts:
                out.post(self.me, d, m, 0)

    def lies(self, cp: Checkpoint) -> tuple[Checkpoint, ...]:
        made = self._made.get(cp.height)
        if made is None:
            K = self.config.checkpoint_interval
            h = cp.height
            # one interval beyond the window a replica keeps checkpoints for
            spread = (4 * self.config.watermark_window + K) // K + 2
            lies = [
                Checkpoint(h, _flip(cp.state_root), self.me),  # wrong root
                Checkpoint(h + 1, cp.state_root, self.me),  # not a checkpoint height
                Checkpoint(h + K * (1 << 30), _junk("far", h), self.me),  # far future
            ]
            lies += [
                Checkpoint(h + K * i, _junk("spread", h + K * i), self.me)
                for i in range(1, spread + 1)
            ]
            made = self._made[h] = tuple(self.sign(c) for c in lies)
            for old in [x for x in self._made if x < h - K]:
                del self._made[old]
        return made


class FloodViews(Signing):
    name = "flood_views"

    def __init__(
        self, me: int, config: ConsensusConfig, signer: Signer, rules: PayloadRules, count: int
    ) -> None:
        super().__init__(me, config, signer)
        self.empty_root = rules.payload_root(())
        self.count = count or FLOOD_COUNT
        self.bursts = 0
        self.sent = 0

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        super().transmit(out, dsts, msg)
        if isinstance(msg, Commit) and self.own(msg) and self.bursts < FLOOD_BURSTS:
            self.bursts += 1
            for m in self.flood(msg):
                self.sent += 1
                for d in dsts:
                    out.post(self.me, d, m, 0)

    def flood(self, c: Commit) -> list[Message]:
        """``count`` COMMITs and PREPAREs of distinct views at ``c``'s height (half
        just above its view, half far ahead) and ``count // 4`` PRE-PREPAREs for
        future views we are primary of (valid empty proposals, distinct timestamps)."""
        out: list[Message] = []
        half = self.count // 2
        for i in range(1, self.count + 1):
            v = c.view + i if i <= half else FAR_VIEW + i
            out.append(self.sign(Commit(v, c.height, c.digest, self.me)))
            out.append(self.sign(Prepare(v, c.height, c.digest, self.me)))
        v = c.view
        for i in range(self.count // 4):
            v = self.primary_view_above(v)
            proposal = Proposal(self.chain_id, c.height, i, self.me, self.empty_root)
            out.append(self.sign(PrePrepare(v, proposal, (), self.me)))
        return out


class StatusLie(Signing):
    name = "status_lie"

    def status_height(self, height: int) -> int | None:
        return height + LIE_HEIGHT

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
        if isinstance(msg, Status) and self.own(msg):
            msg = self.sign(msgspec.structs.replace(msg, height=msg.height + LIE_HEIGHT))
        super().transmit(out, dsts, msg)


def make_behaviour(
    spec: ByzantineSpec,
    config: ConsensusConfig,
    signer: Signer,
    rules: PayloadRules,
    rng: random.Random,
    *,
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
) -> Behaviour:
    me = spec.node
    kind = spec.behaviour
    if kind == "equivocate":
        return Equivocate(me, config, signer, rules, rng)
    if kind == "silent":
        return Silent(me)
    if kind == "vote_all":
        return VoteAll(me, config, signer)
    if kind == "bad_sig":
        return BadSig(me)
    if kind == "delay":
        return Delay(me, spec.delay_ms)
    if kind == "forge_view_change":
        return ForgeViewChange(me, config, signer, rules)
    if kind == "stale_view_change":
        return StaleViewChange(me, config, signer, rng)
    if kind == "oversized":
        return Oversized(me, config, signer, max_frame_bytes)
    if kind == "forge_new_view":
        return ForgeNewView(me, config, signer, rules)
    if kind == "bad_checkpoint":
        return BadCheckpoint(me, config, signer)
    if kind == "flood_views":
        return FloodViews(me, config, signer, rules, spec.count)
    if kind == "status_lie":
        return StatusLie(me, config, signer)
    raise ValueError(f"unknown byzantine behaviour {kind!r}")
