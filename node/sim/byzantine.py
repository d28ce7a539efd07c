"""Byzantine behaviours: how a faulty node twists what its (real) replica sends.

A Byzantine node runs the real replica with its own key; its behaviour sits
between the replica and the network. ``transmit`` decides what actually goes
out for each message the replica sends, ``observe`` may react to what comes
in. Behaviours sign with the node's own signer only: they can lie, stay
silent or garble, but never forge another validator's signature.

- ``equivocate``: a PrePrepare it broadcasts goes out as proposed to some
  peers and as a conflicting proposal (another payload and timestamp,
  correctly signed) to the others (a seeded random half).
- ``silent``: sends nothing and answers no sync request.
- ``vote_all``: on every PrePrepare it receives, broadcasts a signed Prepare
  and Commit for it, whatever its replica thinks.
- ``bad_sig``: every outbound message carries a corrupted signature.
- ``delay``: every outbound message leaves ``delay_ms`` late.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

import msgspec

from consensus.config import ConsensusConfig
from consensus.crypto import PayloadRules, Signer
from consensus.messages import Commit, Message, Prepare, PrePrepare, Proposal, sign_message
from node.sim.scenario import ByzantineSpec

_Vote = TypeVar("_Vote", PrePrepare, Prepare, Commit)


class Outbox(Protocol):
    def post(self, src: int, dst: int, msg: Message, extra_delay: int) -> None: ...


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


class Silent(Behaviour):
    name = "silent"
    answers_sync = False

    def transmit(self, out: Outbox, dsts: Sequence[int], msg: Message) -> None:
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
        self.chain_id = config.chain_id
        self.signer = signer

    def sign(self, m: _Vote) -> _Vote:
        return sign_message(m, self.signer.sign, self.chain_id)


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


def make_behaviour(
    spec: ByzantineSpec,
    config: ConsensusConfig,
    signer: Signer,
    rules: PayloadRules,
    rng: random.Random,
) -> Behaviour:
    me = spec.node
    if spec.behaviour == "equivocate":
        return Equivocate(me, config, signer, rules, rng)
    if spec.behaviour == "silent":
        return Silent(me)
    if spec.behaviour == "vote_all":
        return VoteAll(me, config, signer)
    if spec.behaviour == "bad_sig":
        return BadSig(me)
    if spec.behaviour == "delay":
        return Delay(me, spec.delay_ms)
    raise ValueError(f"unknown byzantine behaviour {spec.behaviour!r}")
