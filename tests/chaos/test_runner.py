"""Unit tests of the runner's own rule, ``check_accepted_kept`` (tests/chaos/runner.py)."""

from __future__ import annotations

from tests.chaos.checker import ChainBlock
from tests.chaos.history import NEMESIS, Op
from tests.chaos.runner import check_accepted_kept

TX_A, TX_B = "a" * 64, "b" * 64


def _op(type_: str, f: str, client: int, op: int, t: int, **kw: object) -> Op:
    return Op(type=type_, f=f, client=client, op=op, wall_ns=t, mono_ns=t, **kw)  # type: ignore[arg-type]


def _accepted(tx: str, node: int, t: int, client: int = 0, op: int = 0) -> list[Op]:
    return [
        _op("invoke", "submit", client, op, t, tx=tx, node=node),
        _op("ok", "submit", client, op, t + 10, tx=tx, node=node, status="accepted", code=202),
    ]


def _window(number: int, fault: str, start: int, end: int) -> list[Op]:
    return [
        _op("info", "nemesis", NEMESIS, number, start, fault=fault, phase="start"),
        _op("info", "nemesis", NEMESIS, number, end, fault=fault, phase="end"),
    ]


def _chain(*txs: str) -> list[ChainBlock]:
    block = ChainBlock(
        height=1, hash="1" * 64, parent_hash="0" * 64, state_root="2" * 64,
        tx_hashes=tuple(txs), view=0, signers=(0, 1, 2), cert_views=(0, 0, 0),
        cert_digest="3" * 64,
    )  # fmt: skip
    return [block]


def test_an_accepted_tx_in_the_chain_is_kept() -> None:
    violations, counts = check_accepted_kept(
        _accepted(TX_A, 1, 100), {0: _chain(TX_A)}, [0, 1, 2], 4
    )
    assert violations == [] and counts["accepted_in_chain"] == 1


def test_an_accepted_tx_missing_while_its_node_stayed_up_is_a_violation() -> None:
    history = _accepted(TX_A, 1, 100) + _window(0, "kill nodes=1", 10, 50)  # before: no excuse
    violations, counts = check_accepted_kept(history, {0: _chain()}, [0, 1, 2, 3], 4)
    assert [v.rule for v in violations] == ["accepted-kept"]
    assert counts["accepted_lost_otherwise"] == 1


def test_a_tx_lost_with_its_killed_node_is_counted_not_a_violation() -> None:
    for fault in ("kill nodes=1", "restart-all", "byzantine node=1 behaviour=equivocate"):
        # the kill may land just before the 202: a window ending after the invoke counts
        history = _window(0, fault, 95, 300) + _accepted(TX_A, 1, 100)
        violations, counts = check_accepted_kept(history, {0: _chain()}, [0, 1, 2, 3], 4)
        assert violations == [], fault
        assert counts["accepted_lost_with_their_node"] == 1


def test_a_pause_or_a_kill_of_another_node_is_no_excuse() -> None:
    history = _accepted(TX_B, 2, 100) + _window(0, "pause nodes=2", 150, 300)
    history += _window(1, "kill nodes=3", 400, 500)
    violations, _ = check_accepted_kept(history, {0: _chain()}, [0, 1, 2, 3], 4)
    assert len(violations) == 1


def test_a_tx_only_a_byzantine_node_accepted_promises_nothing() -> None:
    history = _accepted(TX_A, 3, 100)  # node 3 is Byzantine for the run
    violations, counts = check_accepted_kept(history, {0: _chain()}, [0, 1, 2], 4)
    assert violations == [] and counts["accepted"] == 0
