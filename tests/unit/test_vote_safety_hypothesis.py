"""Property: one correct replica never contradicts itself, whatever it is fed.

Hypothesis drives ONE real replica (n=4, index 0 = primary of view 0, or 1 =
primary of view 1) with arbitrary interleavings of validly signed messages of
the three other validators: pre-prepares (conflicting ones included) from the
primaries of views 0-3, prepares and commits for several views and digests,
duplicates, VIEW-CHANGEs with prepared certificates, NEW-VIEWs, NEW-VIEW
requests, client requests, timer firings with increasing ``now``, and crashes
(the replica is rebuilt from its persisted records and executed chain).

Checked after every step: the replica never sent two votes for one (height,
view) with different digests, counting a primary's PRE-PREPARE (also inside a
NEW-VIEW) as its prepare-phase vote, and its COMMIT at (height, view) always
matches its prepare-phase vote there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consensus.actions import Action, Evidence
from consensus.messages import Commit, Message, NewView, PreparedCert, PrePrepare, ViewChange
from tests.unit.cluster import Solo, Vote, conflicts, sent_messages, vote_digest, votes_in

N = 4
VIEWS = range(3)
HEIGHTS = range(1, 4)

Op = tuple[str, int, int, int, int]

ops = st.one_of(
    st.tuples(st.just("pp"), st.sampled_from(VIEWS), st.sampled_from(HEIGHTS),
              st.integers(0, 1), st.just(0)),
    st.tuples(st.just("prepare"), st.integers(0, N - 1), st.sampled_from(VIEWS),
              st.sampled_from(HEIGHTS), st.integers(0, 2)),
    st.tuples(st.just("commit"), st.integers(0, N - 1), st.sampled_from(VIEWS),
              st.sampled_from(HEIGHTS), st.integers(0, 2)),
    # a whole normal-case round of the others for (view, h, payload k)
    st.tuples(st.just("round"), st.sampled_from(VIEWS), st.sampled_from(HEIGHTS),
              st.integers(0, 1), st.just(0)),
    # several validators voting at once for the latest pre-prepare of (view, h)
    st.tuples(st.just("votes"), st.integers(0, 1), st.sampled_from(VIEWS),
              st.sampled_from(HEIGHTS), st.integers(1, 7)),
    st.tuples(st.just("votes"), st.integers(0, 1), st.sampled_from(VIEWS),
              st.sampled_from(HEIGHTS), st.integers(1, 7)),
    st.tuples(st.just("vc"), st.integers(0, N - 1), st.integers(1, 2),
              st.integers(0, 7), st.just(0)),
    st.tuples(st.just("nv"), st.integers(1, 2), st.integers(0, 7),
              st.integers(0, 7), st.integers(0, 7)),
    st.tuples(st.just("nvreq"), st.integers(0, N - 1), st.integers(0, 3),
              st.just(0), st.just(0)),
    st.tuples(st.just("request"), st.integers(0, 5), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just("timer"), st.sampled_from([1, 20, 500, 1_000, 2_000, 5_000]),
              st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just("restart"), st.just(0), st.just(0), st.just(0), st.just(0)),
)  # fmt: skip


@dataclass
class World:
    """The replica under test plus what the adversary knows."""

    s: Solo
    # the latest pre-prepare seen for (view, height), fed or sent by the replica
    pps: dict[tuple[int, int], PrePrepare] = field(default_factory=dict)
    sent: list[Vote] = field(default_factory=list)

    @property
    def me(self) -> int:
        return self.s.me

    def others(self) -> list[int]:
        return [i for i in range(N) if i != self.me]

    def record(self, out: list[Action]) -> None:
        for a in out:
            for v in votes_in(a, self.me):
                self.sent.append(v)
                if isinstance(v, PrePrepare):
                    self.pps[(v.view, v.height)] = v

    def feed(self, msg: Message) -> None:
        if isinstance(msg, PrePrepare):
            self.pps[(msg.view, msg.height)] = msg
        self.record(self.s.feed(msg))

    def digest(self, view: int, h: int, choice: int) -> bytes:
        if choice == 0 and (view, h) in self.pps:
            return self.pps[(view, h)].proposal.digest()
        return self.pre_prepare(view, h, choice % 2).proposal.digest()

    def pre_prepare(self, view: int, h: int, k: int) -> PrePrepare:
        return self.s.craft.pre_prepare(view, h, (b"tx:%d-%d" % (h, k),), ts=h)

    def certs(self, new_view: int, mask: int) -> tuple[PreparedCert, ...]:
        """Prepared certificates (heights chosen by ``mask``) for the highest-view
        known pre-prepare below ``new_view``, prepared by two other non-primaries."""
        out: list[PreparedCert] = []
        for h in HEIGHTS:
            if not mask >> (h - 1) & 1:
                continue
            known = [v for (v, hh) in self.pps if hh == h and v < new_view]
            if not known:
                continue
            pp = self.pps[(max(known), h)]
            backups = [i for i in self.others() if i != pp.sender][:2]
            out.append(self.s.craft.prepared_cert(pp, backups))
        return tuple(out)

    def view_change(self, new_view: int, sender: int, mask: int) -> ViewChange:
        return self.s.craft.view_change(new_view, sender, self.certs(new_view, mask))

    def step(self, op: Op) -> None:
        kind, a, b, c, d = op
        craft = self.s.craft
        if kind == "pp":
            view, h, k = a, b, c
            if craft.config.primary(view) != self.me:
                self.feed(self.pre_prepare(view, h, k))
        elif kind in ("prepare", "commit"):
            sender, view, h, choice = a, b, c, d
            if sender != self.me:
                make = craft.prepare if kind == "prepare" else craft.commit
                self.feed(make(view, h, self.digest(view, h, choice), sender))
        elif kind == "round":
            view, h, k = a, b, c
            self.step(("pp", view, h, k, 0))
            self.step(("votes", 0, view, h, 7))
            self.step(("votes", 1, view, h, 7))
        elif kind == "votes":
            phase, view, h, senders = a, b, c, d
            make = craft.prepare if phase == 0 else craft.commit
            digest = self.digest(view, h, 0)
            for i, sender in enumerate(self.others()):
                if senders >> i & 1:
                    self.feed(make(view, h, digest, sender))
        elif kind == "vc":
            sender, new_view, mask = a, b, c
            if sender != self.me:
                self.feed(self.view_change(new_view, sender, mask))
        elif kind == "nv":
            view, masks = a, (b, c, d)
            if craft.config.primary(view) != self.me:
                vcs = tuple(
                    self.view_change(view, s, m) for s, m in zip(self.others(), masks, strict=True)
                )
                nv = craft.new_view(view, vcs)
                for pp in nv.pre_prepares:
                    self.pps[(pp.view, pp.height)] = pp
                self.feed(nv)
        elif kind == "nvreq":
            if a != self.me:
                self.feed(craft.nv_request(b, a))
        elif kind == "request":
            self.record(self.s.request(b"tx:r%d" % a))
        elif kind == "timer":
            self.record(self.s.timer(self.s.now + a))
        elif kind == "restart":
            self.record(self.s.restart())


def check(w: World) -> None:
    bad = conflicts(w.sent)
    assert not bad, f"replica {w.me} sent conflicting votes:\n{bad[0][0]!r}\n{bad[0][1]!r}"
    prepare_phase: dict[tuple[int, int], bytes] = {}
    for v in w.sent:
        if not isinstance(v, Commit):
            prepare_phase[(v.height, v.view)] = vote_digest(v)
    for v in w.sent:
        if isinstance(v, Commit):
            mine = prepare_phase.get((v.height, v.view))
            assert mine is None or mine == v.digest, f"commit {v!r} contradicts own prepare"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(me=st.sampled_from([0, 1]), script=st.lists(ops, min_size=20, max_size=80))
def test_replica_never_sends_conflicting_votes(me: int, script: list[Op]) -> None:
    """For any interleaving of the inputs above, replica ``me`` never sends two
    different votes for one (phase, height, view), nor a commit that contradicts
    its own prepare-phase vote (checked after every step)."""
    w = World(Solo(N, me, batch_max_count=1))
    w.record(w.s.log)
    for op in script:
        w.step(op)
        check(w)
    # coverage of the interesting paths, shown by --hypothesis-show-statistics
    event(f"max view {w.s.replica.view}")
    event(f"delivered {w.s.replica.height}")
    kinds = sorted({type(v).__name__ for v in w.sent})
    if any(isinstance(m, NewView) and m.sender == me for m in sent_messages(w.s.log)):
        event("sent its own NEW-VIEW")
    if any(isinstance(m, Evidence) for m in w.s.log):
        event("reported evidence")
    event("sent " + "+".join(kinds) if kinds else "sent no vote")


def test_harness_can_see_a_conflict() -> None:
    """Sanity of the checker: two prepares for one (height, view) with different
    digests are reported."""
    w = World(Solo(N, 3))
    c = w.s.craft
    w.sent += [c.prepare(0, 1, b"\x01" * 32, 3), c.prepare(0, 1, b"\x02" * 32, 3)]
    try:
        check(w)
    except AssertionError:
        return
    raise AssertionError("check() missed a conflict")
