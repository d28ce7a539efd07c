"""The document exchange's hostile-input edges (node/exchange/service.py, node/net/wire.py):
relayed answers out of line, serving bounds, request paths, frame bounds. The whole
flow between nodes is tests/integration/test_document_exchange.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from node.exchange.service import (
    MAX_SEALED,
    MAX_SERVING_PER_PEER,
    DocumentExchange,
    ExchangeError,
    ExchangeLimits,
    _parse_fetch_path,
)
from node.exchange.store import DocumentStore
from node.net.wire import (
    DocumentFrame,
    FrameError,
    GetDocumentFrame,
    decode_frame,
    encode_frame,
)
from storage.memory import MemoryChainStore

PEER, OTHER = b"\x01" * 32, b"\x02" * 32
VERSION, TICKET = "ab" * 32, "cd" * 32


class Wire:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def send(self, peer: bytes, data: bytes) -> bool:
        self.sent.append((peer, decode_frame(data)))
        return True


def _exchange(tmp_path: Path, wire: Wire, **limits: int) -> DocumentExchange:
    state = MemoryChainStore()

    async def submit(data: bytes) -> str:
        raise AssertionError("not submitting here")

    async def room(peer: bytes, below: int) -> bool:
        return True

    return DocumentExchange(
        DocumentStore.open(tmp_path),
        me=b"\x00" * 32,
        state=lambda: state,
        height=lambda: 0,
        submit=submit,
        send=wire.send,
        connected=lambda: [PEER],
        wait_for_room=room,
        clock_ms=lambda: 1_000_000,
        limits=ExchangeLimits(**limits),
    )


def _start_fetch(ex: DocumentExchange, req: int, peer: bytes = PEER) -> asyncio.Future[bytes]:
    """A relayed fetch in flight, as ``_relay`` leaves it while it waits."""
    from node.exchange.service import _Fetch

    done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    ex._fetches[req] = _Fetch(peer, done)
    return done


def _piece(req: int, total: int, offset: int, data: bytes, code: str = "") -> DocumentFrame:
    return DocumentFrame(req, code, "why" if code else "", total, offset, data)


async def test_pieces_in_order_make_the_answer(tmp_path: Path) -> None:
    ex = _exchange(tmp_path, Wire())
    done = _start_fetch(ex, 7)
    assert ex.on_document(PEER, _piece(7, 6, 0, b"abc")) is None
    assert not done.done()
    assert ex.on_document(PEER, _piece(7, 6, 3, b"def")) is None
    assert done.result() == b"abcdef"


async def test_an_answer_out_of_line_fails_the_fetch_and_names_the_peer(tmp_path: Path) -> None:
    ex = _exchange(tmp_path, Wire())
    done = _start_fetch(ex, 1)
    assert ex.on_document(PEER, _piece(1, 6, 3, b"def")) == "document answer out of order"
    with pytest.raises(ExchangeError) as err:
        done.result()
    assert err.value.code == "custodian-error" and err.value.status == 502

    done = _start_fetch(ex, 2)
    too_big = _piece(2, MAX_SEALED + 1, 0, b"x")
    assert ex.on_document(PEER, too_big) == "document answer out of bounds"
    assert done.exception() is not None

    done = _start_fetch(ex, 3)
    ex.on_document(PEER, _piece(3, 6, 0, b"abc"))
    assert ex.on_document(PEER, _piece(3, 9, 3, b"def")) == "document answer out of bounds"
    assert done.exception() is not None


async def test_pieces_from_another_peer_or_for_no_fetch_are_dropped(tmp_path: Path) -> None:
    ex = _exchange(tmp_path, Wire())
    done = _start_fetch(ex, 1)
    assert ex.on_document(OTHER, _piece(1, 3, 0, b"abc")) is None
    assert ex.on_document(PEER, _piece(99, 3, 0, b"abc")) is None
    assert not done.done()


async def test_a_refusal_keeps_its_code_and_an_unknown_code_is_custodian_error(
    tmp_path: Path,
) -> None:
    ex = _exchange(tmp_path, Wire())
    done = _start_fetch(ex, 1)
    ex.on_document(PEER, _piece(1, 0, 0, b"", code="consent-revoked"))
    with pytest.raises(ExchangeError) as err:
        done.result()
    assert (err.value.status, err.value.code) == (403, "consent-revoked")
    done = _start_fetch(ex, 2)
    ex.on_document(PEER, _piece(2, 0, 0, b"", code="made-up"))
    with pytest.raises(ExchangeError) as err:
        done.result()
    assert (err.value.status, err.value.code) == (502, "custodian-error")


async def test_a_custodian_that_leaves_ends_its_fetches(tmp_path: Path) -> None:
    ex = _exchange(tmp_path, Wire())
    mine, theirs = _start_fetch(ex, 1), _start_fetch(ex, 2, OTHER)
    ex.on_peer_down(PEER)
    with pytest.raises(ExchangeError) as err:
        mine.result()
    assert err.value.code == "custodian-unreachable" and not theirs.done()


async def test_a_relayed_fetch_times_out(tmp_path: Path) -> None:
    wire = Wire()
    ex = _exchange(tmp_path, wire, fetch_timeout_ms=50)
    from node.exchange.service import SignedRequest

    request = SignedRequest(f"/v1/documents/{VERSION}", 1, b"\x03" * 32, b"\x04" * 64)
    with pytest.raises(ExchangeError) as err:
        await ex._relay(request, 0, [OTHER, PEER])
    assert (err.value.status, err.value.code) == (504, "custodian-timeout")
    assert [peer for peer, _ in wire.sent] == [PEER]  # the connected custodian node
    assert not ex._fetches
    with pytest.raises(ExchangeError) as err:
        await ex._relay(request, 0, [OTHER])
    assert (err.value.status, err.value.code) == (502, "custodian-unreachable")


async def test_a_custodian_serves_a_bounded_number_of_requests(tmp_path: Path) -> None:
    wire = Wire()
    ex = _exchange(tmp_path, wire, max_serving=3)
    frame = GetDocumentFrame(1, f"/v1/documents/{VERSION}", 1, b"\x03" * 32, b"\x04" * 64, 0)
    gate = asyncio.Event()

    async def held(peer: bytes, frame: GetDocumentFrame) -> None:
        await gate.wait()

    ex._answer = held  # type: ignore[method-assign]
    for _ in range(MAX_SERVING_PER_PEER + 1):
        ex.on_get_document(PEER, frame)
    ex.on_get_document(OTHER, frame)
    ex.on_get_document(OTHER, frame)  # the fourth in all
    refused = [(peer, f.code) for peer, f in wire.sent]
    assert refused == [(PEER, "busy"), (OTHER, "busy")]
    gate.set()
    await ex.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v1/documents/" + "AB" * 32,
        "/v1/documents/" + "ab" * 31,
        "/v1/blocks/1",
        f"/v1/documents/{VERSION}?access=xyz",
        f"/v1/documents/{VERSION}?access={TICKET}&access={TICKET}",
        f"/v1/documents/{VERSION}?access={TICKET}&extra=1",
        f"/v1/documents/{VERSION}/more",
    ],
)
def test_a_relayed_path_must_name_one_version_and_at_most_one_ticket(path: str) -> None:
    with pytest.raises(ExchangeError) as err:
        _parse_fetch_path(path)
    assert err.value.code == "malformed"


def test_a_relayed_path_names_version_and_ticket() -> None:
    assert _parse_fetch_path(f"/v1/documents/{VERSION}?access={TICKET}") == (VERSION, TICKET)
    assert _parse_fetch_path(f"/v1/documents/{VERSION}") == (VERSION, None)


def test_document_frames_round_trip_and_refuse_out_of_bounds_fields() -> None:
    good = GetDocumentFrame(1, "/v1/documents/x", 5, b"\x01" * 32, b"\x02" * 64, 3)
    assert decode_frame(encode_frame(good)) == good
    piece = DocumentFrame(1, "", "", 10, 4, b"abcdef")
    assert decode_frame(encode_frame(piece)) == piece
    bad: list[GetDocumentFrame | DocumentFrame] = [
        GetDocumentFrame(1, "/x" * 300, 5, b"\x01" * 32, b"\x02" * 64, 3),
        GetDocumentFrame(1, "/x", 5, b"\x01" * 31, b"\x02" * 64, 3),
        GetDocumentFrame(1, "/x", -5, b"\x01" * 32, b"\x02" * 64, 3),
        DocumentFrame(1, "", "", 10, 5, b"abcdef"),
        DocumentFrame(-1, "", "", 10, 0, b""),
        DocumentFrame(1, "x" * 65, "", 0, 0, b""),
    ]
    for frame in bad:
        with pytest.raises(FrameError):
            decode_frame(encode_frame(frame))


async def test_a_custodian_waits_for_the_tickets_height_until_a_commit_brings_it(
    tmp_path: Path,
) -> None:
    ex = _exchange(tmp_path, Wire(), behind_wait_ms=2_000)
    height = [4]
    ex._height = lambda: height[0]
    waiting = asyncio.create_task(ex._wait_for_height(5))
    await asyncio.sleep(0)
    assert not waiting.done()
    height[0] = 5
    ex.on_committed()
    await asyncio.wait_for(waiting, 1.0)  # woken by the commit, not by a poll


async def test_a_custodian_too_far_behind_answers_custodian_behind(tmp_path: Path) -> None:
    ex = _exchange(tmp_path, Wire(), behind_wait_ms=50)
    with pytest.raises(ExchangeError) as err:
        await ex._wait_for_height(1)
    assert (err.value.status, err.value.code) == (503, "custodian-behind")
