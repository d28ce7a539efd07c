"""Unit tests of the history model (tests/chaos/history.py): writer, reader, schema."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.history import (
    NEMESIS,
    Clock,
    FaultSpan,
    HistoryError,
    HistoryWriter,
    Op,
    check_sequence,
    completions,
    fault_spans,
    read_history,
)

TX_A = "a" * 64
TX_B = "b" * 64


def fake_clock(step_ns: int = 1_000_000, start: int = 1) -> Clock:
    """A clock that advances ``step_ns`` per reading, from ``start`` steps
    (wall = mono + 10**18)."""
    ticks = itertools.count(start)

    def clock() -> tuple[int, int]:
        mono = next(ticks) * step_ns
        return 10**18 + mono, mono

    return clock


def write_sample(path: Path) -> list[Op]:
    with HistoryWriter(path, clock=fake_clock()) as h:
        ops = [h.nemesis(0, "start", "isolate node=1")]
        inv = h.invoke(0, "submit", TX_A, 2)
        ops += [inv, h.complete(inv, "ok", status="accepted", code=202)]
        inv = h.invoke(1, "submit", TX_B, 3)
        ops += [inv, h.complete(inv, "info", error="timeout")]
        inv = h.invoke(0, "status", TX_A, 1)
        ops += [inv, h.complete(inv, "ok", status="committed", height=4, index=0, code=200)]
        ops.append(h.nemesis(0, "end", "isolate node=1"))
    return ops


def test_written_history_reads_back_identical(tmp_path: Path) -> None:
    """What the writer appends (one JSON object per line, invoke numbers per client,
    times from the clock) reads back as the same ops, in order."""
    path = tmp_path / "history.jsonl"
    ops = write_sample(path)
    lines = path.read_text().splitlines()
    assert len(lines) == len(ops) == 8
    first = json.loads(lines[1])
    assert first == {
        "type": "invoke", "f": "submit", "client": 0, "op": 0, "tx": TX_A, "node": 2,
        "wall_ns": 10**18 + 2_000_000, "mono_ns": 2_000_000,
    }  # fmt: skip
    assert read_history(path) == ops
    assert [op.op for op in ops if op.client == 0] == [0, 0, 1, 1]


def test_writer_continues_an_existing_history(tmp_path: Path) -> None:
    """A second writer on the same file appends as its continuation: op numbers go
    on per client, and an op that would break the sequence (time going back) is
    refused."""
    path = tmp_path / "h.jsonl"
    write_sample(path)
    with (
        HistoryWriter(path, clock=fake_clock()) as h,
        pytest.raises(HistoryError, match="time goes back"),
    ):
        h.nemesis(9, "start", "kill nodes=0")
    with HistoryWriter(path, clock=fake_clock(start=100)) as h:
        assert h.invoke(0, "submit", TX_B, 0).op == 2
        h.nemesis(9, "start", "kill nodes=0")
    assert len(read_history(path)) == 10


def test_writer_refuses_a_bad_op_before_writing_it(tmp_path: Path) -> None:
    """An ok status read of a committed tx without a height is refused at once and
    never reaches the file; completing an op that is not open is refused too."""
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path, clock=fake_clock()) as h:
        inv = h.invoke(0, "status", TX_A, 0)
        with pytest.raises(HistoryError, match="needs height"):
            h.complete(inv, "ok", status="committed", index=0)
        h.complete(inv, "ok", status="pending")
        with pytest.raises(HistoryError, match="not open"):
            h.complete(inv, "ok", status="pending")
    assert len(path.read_text().splitlines()) == 2


def test_concurrent_clients_write_a_valid_history(tmp_path: Path) -> None:
    """Eight client threads invoking and completing at once leave a history that
    reads back clean with every op paired."""
    path = tmp_path / "h.jsonl"
    with HistoryWriter(path) as h:

        def client(c: int) -> None:
            for _ in range(50):
                inv = h.invoke(c, "submit", TX_A, c % 4)
                h.complete(inv, "fail", code=503, error="mempool-full")

        threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    ops = read_history(path)
    assert len(ops) == 800
    assert all(done is not None for _, done in completions(ops))


BASE: dict[str, Any] = {"client": 0, "op": 0, "wall_ns": 1, "mono_ns": 1, "tx": TX_A, "node": 0}


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{**BASE, "type": "invoke", "f": "submit", "colour": 1}], "unknown field"),
        ([{**BASE, "type": "invoke", "f": "submit", "node": "0"}], "Expected `int"),
        ([{**BASE, "type": "begin", "f": "submit"}], "Invalid enum value 'begin'"),
        ([{**BASE, "type": "invoke", "f": "submit", "tx": "ABC"}], "64 lower-case hex"),
        ([{**BASE, "type": "invoke", "f": "submit", "error": "x"}], "no outcome fields"),
        ([{**BASE, "type": "ok", "f": "submit", "status": "accepted"}], "not open"),
        (
            [{**BASE, "type": "invoke", "f": "status"}, {**BASE, "type": "invoke", "f": "status"}],
            "open",
        ),
        (
            [
                {**BASE, "type": "invoke", "f": "status"},
                {**BASE, "type": "ok", "f": "status", "status": "committed", "height": 3},
            ],
            "needs height >= 1 and index >= 0",
        ),
        (
            [
                {**BASE, "type": "invoke", "f": "status"},
                {**BASE, "type": "ok", "f": "status", "status": "pending", "height": 3},
            ],
            "status pending has no height",
        ),
        (
            [
                {**BASE, "type": "invoke", "f": "submit"},
                {**BASE, "type": "ok", "f": "submit", "status": "accepted", "tx": TX_B},
            ],
            "another f, tx or node",
        ),
        (
            [
                {**BASE, "mono_ns": 5, "type": "invoke", "f": "submit"},
                {**BASE, "mono_ns": 4, "type": "info", "f": "submit", "error": "timeout"},
            ],
            "monotonic time goes back",
        ),
        ([{**BASE, "type": "fail", "f": "submit"}], "needs an error"),
        (
            [
                {
                    "type": "info",
                    "f": "nemesis",
                    "client": NEMESIS,
                    "op": 3,
                    "wall_ns": 1,
                    "mono_ns": 1,
                    "fault": "ring",
                    "phase": "end",
                }
            ],
            "ends without a start",
        ),
        (
            [
                {
                    "type": "invoke",
                    "f": "nemesis",
                    "client": NEMESIS,
                    "op": 3,
                    "wall_ns": 1,
                    "mono_ns": 1,
                    "fault": "ring",
                    "phase": "start",
                }
            ],
            "type info",
        ),
        (["not json"], "malformed"),
    ],
)
def test_reader_names_the_line_of_each_schema_or_sequence_breach(
    tmp_path: Path, lines: list[Any], message: str
) -> None:
    """Each crafted breach is refused with its file:line and a message saying what."""
    path = tmp_path / "bad.jsonl"
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    path.write_text(text)
    with pytest.raises(HistoryError) as info:
        read_history(path)
    assert f"{path}:{len(lines)}:" in str(info.value)
    assert message in str(info.value)


def test_views_pair_completions_and_fault_windows(tmp_path: Path) -> None:
    """``completions`` pairs each invoke with its completion (None if cut off);
    ``fault_spans`` gives each window, an unclosed one with end None."""
    path = tmp_path / "h.jsonl"
    ops = write_sample(path)
    with HistoryWriter(path, clock=fake_clock(10**9, start=1)) as h:
        cut = h.invoke(2, "status", TX_B, 0)
        h.nemesis(1, "start", "ring reach=1")
    ops = read_history(path)
    pairs = completions(ops)
    assert [(i.client, i.op, c is not None) for i, c in pairs] == [
        (0, 0, True), (1, 0, True), (0, 1, True), (2, 0, False),
    ]  # fmt: skip
    assert pairs[-1][0] == cut
    spans = fault_spans(ops)
    assert spans[0] == FaultSpan(1_000_000, 8_000_000, "isolate node=1")
    assert spans[1].end_ns is None and spans[1].kind == "ring"
    assert check_sequence(ops) == []
