"""Document exchange on a running node: publish, relay a fetch, serve as custodian.

Theory of operation (docs/document-exchange.md):

- **Publish** (``publish``): a custodian member's signed request carries the
  resource's text, its salt and the signed ``record.anchor``. The node checks the
  anchor is the member's and names ``SHA-256(salt || JCS(resource))``, keeps text
  and salt in its encrypted store and submits the anchor.
- **Fetch** (``fetch``, on any node, normally the requester's own): after the
  request's signature and the signer's membership, the node finds the version on
  its chain, then the custodian member's nodes (validators it owns and nodes it
  registered). If this node is one of them it serves the request itself;
  otherwise it relays the signed request over the peer link
  (``GetDocumentFrame``) to the first connected one, and collects the answer
  (``DocumentFrame`` pieces, at most ``MAX_SEALED`` bytes) into the HTTP answer.
- **Serve** (``_serve``): the custodian checks the relayed signature itself, then
  waits (at most ``behind_wait_ms``) until its chain holds the ticket's height,
  decides on its own chain by block time (``node/exchange/ticket.py``), and
  answers the text and salt sealed to the requesting member's key, in pieces of
  ``piece_bytes``, each queued only when the link's send queue has room.

Bounds: at most ``max_fetches`` fetches wait on this node, and a custodian
serves at most ``MAX_SERVING_PER_PEER`` requests per peer and ``max_serving`` in
all (more: ``503 busy``); a relayed fetch that has no complete answer after
``fetch_timeout_ms`` is ``504 custodian-timeout``, one whose custodian drops
off ``502 custodian-unreachable``. Nothing is cached: every fetch asks the
custodian, which decides at its latest block, so no answer outlives a revocation.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import structlog

from node.core.codec import CodecError, canonical_json, parse_json
from node.core.hexstr import HEX64
from node.core.tx import Tx, TxError, decode_tx
from node.exchange.canonical import (
    MAX_RESOURCE_BYTES,
    FhirResourceError,
    ResourceTooLarge,
    commitment,
    parse_fhir,
    utf8_length,
)
from node.exchange.payload import encode_fetch_plaintext
from node.exchange.sealing import SEAL_OVERHEAD, seal_to_member
from node.exchange.signed_request import (
    HEADER_SIGNATURE,
    HEADER_SIGNER,
    HEADER_TIME,
    RequestVerifier,
    SignedRequestError,
    header_value,
)
from node.exchange.store import DocumentStore, DocumentStoreError, Erased, UnknownDocument
from node.exchange.ticket import TicketRefused, check_ticket
from node.ledger.domains.ehr import record_info, version_of
from node.ledger.domains.nodes import registered_nodes
from node.ledger.executor import result_key
from node.ledger.members import is_active, member_of
from node.ledger.state import BlockState, StateReader
from node.ledger.validators import latest_epoch
from node.net.wire import DocumentFrame, GetDocumentFrame, encode_frame

log = structlog.get_logger("hygeia.exchange")

# The sealed answer's largest size: the plaintext JSON (the resource's text, a JSON
# text, whose escaping at most doubles it: a JSON text holds no raw control
# character but whitespace), the salt and the box's overhead.
MAX_SEALED: Final = 2 * MAX_RESOURCE_BYTES + 256 + SEAL_OVERHEAD
# A publish request's largest body: the resource's text as a JSON string (escaping
# can triple it: a client escaping non-ASCII writes 6 bytes for a 2-byte
# character), salt and anchor.
MAX_PUBLISH_BODY: Final = 3 * MAX_RESOURCE_BYTES + (64 << 10)
MAX_SERVING_PER_PEER: Final = 2
DOCUMENTS_PATH: Final = "/v1/documents/"

# refusal code -> HTTP status (docs/document-exchange.md, "Refusals")
STATUS: Final[Mapping[str, int]] = {
    "bad-signature": 401,
    "stale": 401,
    "replayed": 401,
    "not-member": 403,
    "erased": 403,
    "no-ticket": 403,
    "ticket-rejected": 403,
    "ticket-mismatch": 403,
    "wrong-requester": 403,
    "consent-revoked": 403,
    "consent-expired": 403,
    "emergency-expired": 403,
    "unknown-version": 404,
    "not-held": 404,
    "malformed": 400,
    "not-a-resource": 400,
    "bad-json": 400,
    "anchor-mismatch": 400,
    "too-large": 413,
    "commitment-mismatch": 422,
    "custodian-unreachable": 502,
    "custodian-error": 502,
    "custodian-behind": 503,
    "busy": 503,
    "replay-cache-full": 503,
    "custodian-timeout": 504,
}


class ExchangeError(Exception):
    """A refusal with its HTTP status and stable code."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else STATUS.get(code, 502)


@dataclass(frozen=True)
class SignedRequest:
    """A fetch's signature headers, as relayed to the custodian."""

    path: str
    time_ms: int
    signer: bytes
    sig: bytes


@dataclass
class _Fetch:
    peer: bytes
    done: asyncio.Future[bytes]
    total: int = -1
    buffer: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class ExchangeLimits:
    fetch_timeout_ms: int = 20_000
    behind_wait_ms: int = 3_000
    max_fetches: int = 4
    max_serving: int = 4
    piece_bytes: int = 1 << 20
    room_bytes: int = 2 << 20


class DocumentExchange:
    def __init__(
        self,
        store: DocumentStore,
        *,
        me: bytes,
        state: Callable[[], StateReader],
        height: Callable[[], int],
        submit: Callable[[bytes], Awaitable[str]],
        send: Callable[[bytes, bytes], bool],
        connected: Callable[[], Sequence[bytes]],
        wait_for_room: Callable[[bytes, int], Awaitable[bool]],
        clock_ms: Callable[[], int],
        executor: Executor | None = None,
        limits: ExchangeLimits = ExchangeLimits(),
        observe: Callable[[str, str], None] | None = None,
    ) -> None:
        self.store = store
        self._me = me
        self._state = state
        self._height = height
        self._submit = submit
        self._send = send
        self._connected = connected
        self._wait_for_room = wait_for_room
        self._clock_ms = clock_ms
        self._executor = executor
        self.limits = limits
        self._verifier = RequestVerifier()  # requests signed to this node's API
        self._relayed = RequestVerifier()  # requests relayed to this node as custodian
        self._ids = itertools.count(1)
        self._fetches: dict[int, _Fetch] = {}
        self._serving: dict[bytes, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._committed = asyncio.Event()  # replaced by a fresh one at every commit
        self.counts: dict[str, int] = {}
        # (operation, result) of every publish, fetch and serve: the node's metrics
        self._observe = observe or (lambda operation, result: None)

    # ------------------------------------------------------------ helpers
    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    async def _off_loop(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _check_signed(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes | None
    ) -> tuple[str, dict[str, Any]]:
        """The signer (64 hex) of a request to this node and its active member record."""
        try:
            signer = self._verifier.check(method, raw_path, headers, body, self._clock_ms())
        except SignedRequestError as exc:
            raise ExchangeError(exc.code, exc.message, exc.status) from None
        return self._member(signer.hex())

    def _member(self, signer_hex: str) -> tuple[str, dict[str, Any]]:
        member = member_of(BlockState(self._state()), signer_hex)
        if member is None or not is_active(member):
            raise ExchangeError("not-member", "the signer is no key of an active member")
        return signer_hex, member

    # ------------------------------------------------------------ publish
    async def publish(
        self, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        """``POST /v1/documents``: store the resource, then submit its anchor."""
        try:
            answer = await self._publish(raw_path, headers, body)
        except ExchangeError as exc:
            self._observe("publish", exc.code)
            raise
        self._observe("publish", "ok")
        return answer

    async def _publish(
        self, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> dict[str, str]:
        signer, member = self._check_signed("POST", raw_path, headers, body)
        try:
            request = parse_json(body, max_bytes=MAX_PUBLISH_BODY)
        except CodecError as exc:
            raise ExchangeError("malformed", f"body: {exc}") from None
        if not isinstance(request, dict) or set(request) != {"resource", "salt", "anchor"}:
            raise ExchangeError("malformed", 'body must be {"resource", "salt", "anchor"}')
        text, salt_hex, anchor = request["resource"], request["salt"], request["anchor"]
        if not isinstance(text, str):
            raise ExchangeError("malformed", "resource must be the resource's JSON text")
        if utf8_length(text) > MAX_RESOURCE_BYTES:
            raise ExchangeError("too-large", f"resource over {MAX_RESOURCE_BYTES} bytes")
        if not isinstance(salt_hex, str) or not HEX64.fullmatch(salt_hex):
            raise ExchangeError("malformed", "salt must be 64 lower-case hex digits")
        tx = self._anchor_of(anchor)
        if tx.signer != signer and member_of(BlockState(self._state()), tx.signer) != member:
            raise ExchangeError(
                "anchor-mismatch", "the anchor is not signed by the request's member"
            )
        salt = bytes.fromhex(salt_hex)
        try:
            expected = (await self._off_loop(commitment, salt, text)).hex()
            await self._off_loop(parse_fhir, text)
        except ResourceTooLarge as exc:
            raise ExchangeError("too-large", str(exc)) from None
        except FhirResourceError as exc:
            raise ExchangeError(exc.code, str(exc)) from None
        if tx.body.get("commitment") != expected:
            raise ExchangeError(
                "commitment-mismatch",
                "the anchor's commitment is not SHA-256(salt || JCS(resource)); not submitted",
            )
        record_id = str(tx.body["record_id"])
        record = record_info(BlockState(self._state()), record_id)
        if record is not None and record.get("erased") is not None:
            raise ExchangeError("erased", f"record {record_id} was erased; not stored")
        try:
            await self._off_loop(self.store.put, tx.hash, record_id, text, salt)
        except DocumentStoreError as exc:
            code = "erased" if isinstance(exc, Erased) else "malformed"
            raise ExchangeError(code, str(exc)) from None
        tx_hash = await self._submit(tx.wire)
        self._count("published")
        log.info("document published", version_id=tx_hash, record_id=record_id)
        return {"hash": tx_hash, "record_id": record_id, "version_id": tx_hash}

    @staticmethod
    def _anchor_of(anchor: Any) -> Tx:
        if not isinstance(anchor, dict):
            raise ExchangeError("malformed", "anchor must be a signed record.anchor transaction")
        try:
            tx = decode_tx(canonical_json(anchor), chain_id=None)
        except (CodecError, TxError) as exc:
            raise ExchangeError("malformed", f"anchor: {exc}") from None
        if tx.type != "record.anchor":
            raise ExchangeError("anchor-mismatch", f"anchor is a {tx.type}, not a record.anchor")
        return tx

    # ------------------------------------------------------------ fetch
    async def fetch(
        self, raw_path: str, headers: Mapping[str, str], version_id: str, ticket: str | None
    ) -> dict[str, str]:
        """``GET /v1/documents/{version_id}?access=<ticket>``: the sealed document."""
        try:
            answer = await self._fetch(raw_path, headers, version_id, ticket)
        except ExchangeError as exc:
            self._observe("fetch", exc.code)
            raise
        self._observe("fetch", "ok")
        return answer

    async def _fetch(
        self, raw_path: str, headers: Mapping[str, str], version_id: str, ticket: str | None
    ) -> dict[str, str]:
        signer, _member = self._check_signed("GET", raw_path, headers, None)
        state = self._state()
        version = version_of(BlockState(state), version_id)
        if version is None:
            raise ExchangeError("unknown-version", "no record version has this id")
        if version["erased"] is not None:
            raise ExchangeError("erased", f"record {version['record_id']} was erased")
        request = SignedRequest(  # the verifier checked these headers
            raw_path,
            int(header_value(headers, HEADER_TIME) or "0"),
            bytes.fromhex(signer),
            bytes.fromhex(header_value(headers, HEADER_SIGNATURE) or ""),
        )
        custodians = self._custodian_nodes(state, str(version["custodian"]))
        if self._me in custodians:
            sealed = await self._serve(request, _ticket_height(state, ticket), relayed=False)
        else:
            sealed = await self._relay(request, _ticket_height(state, ticket), custodians)
        self._count("fetched")
        return {"version_id": version_id, "sealed": base64.b64encode(sealed).decode("ascii")}

    @staticmethod
    def _custodian_nodes(state: StateReader, custodian: str) -> list[bytes]:
        """The custodian member's node keys: validators it owns, then its registered
        nodes, in key order within each."""
        nodes: list[bytes] = []
        epoch = latest_epoch(BlockState(state))
        if epoch is not None:
            nodes += sorted(
                bytes.fromhex(v.node_key) for v in epoch.validators if v.member == custodian
            )
        nodes += [bytes.fromhex(n["node_key"]) for n in registered_nodes(state, custodian)]
        return list(dict.fromkeys(nodes))

    async def _relay(
        self, request: SignedRequest, ticket_height: int, custodians: Sequence[bytes]
    ) -> bytes:
        """Ask the custodian's connected nodes in turn: the next one when a node does
        not hold the version or drops off; any other answer is the answer."""
        linked = set(self._connected())
        candidates = [n for n in custodians if n in linked]
        if not candidates:
            raise ExchangeError(
                "custodian-unreachable", "no node of the custodian is connected to this node"
            )
        for peer in candidates[:-1]:
            try:
                return await self._relay_to(peer, request, ticket_height)
            except ExchangeError as exc:
                if exc.code not in ("not-held", "custodian-unreachable"):
                    raise
                log.info("custodian node cannot answer, trying the next", code=exc.code)
        return await self._relay_to(candidates[-1], request, ticket_height)

    async def _relay_to(self, peer: bytes, request: SignedRequest, ticket_height: int) -> bytes:
        if len(self._fetches) >= self.limits.max_fetches:
            raise ExchangeError("busy", "too many fetches in progress; retry shortly")
        req = next(self._ids)
        fetch = _Fetch(peer, asyncio.get_running_loop().create_future())
        self._fetches[req] = fetch
        frame = GetDocumentFrame(
            req, request.path, request.time_ms, request.signer, request.sig, ticket_height
        )
        try:
            if not self._send(peer, encode_frame(frame)):
                raise ExchangeError("custodian-unreachable", "the custodian's link is full")
            try:
                async with asyncio.timeout(self.limits.fetch_timeout_ms / 1000):
                    return await fetch.done
            except TimeoutError:
                raise ExchangeError(
                    "custodian-timeout",
                    f"no complete answer from the custodian in {self.limits.fetch_timeout_ms} ms",
                ) from None
        finally:
            self._fetches.pop(req, None)

    def on_document(self, peer: bytes, frame: DocumentFrame) -> str | None:
        """A piece of an answer; a reason to penalise ``peer`` if it is out of line."""
        fetch = self._fetches.get(frame.req)
        if fetch is None or fetch.peer != peer or fetch.done.done():
            return None  # late (timed out) or not ours: dropped
        if frame.code:
            code = frame.code if frame.code in STATUS else "custodian-error"
            fetch.done.set_exception(ExchangeError(code, f"custodian: {frame.message}"))
            return None
        if frame.total > MAX_SEALED or (fetch.total >= 0 and frame.total != fetch.total):
            fetch.done.set_exception(ExchangeError("custodian-error", "answer size out of bounds"))
            return "document answer out of bounds"
        if frame.offset != len(fetch.buffer):
            fetch.done.set_exception(ExchangeError("custodian-error", "answer pieces out of order"))
            return "document answer out of order"
        fetch.total = frame.total
        fetch.buffer += frame.data
        if len(fetch.buffer) == fetch.total:
            fetch.done.set_result(bytes(fetch.buffer))
        return None

    def on_peer_down(self, peer: bytes) -> None:
        for fetch in self._fetches.values():
            if fetch.peer == peer and not fetch.done.done():
                fetch.done.set_exception(
                    ExchangeError("custodian-unreachable", "the custodian's node disconnected")
                )

    # ------------------------------------------------------------ serve
    def on_get_document(self, peer: bytes, frame: GetDocumentFrame) -> None:
        """A relayed request: answered by a task of its own, within the serving bounds."""
        if self._serving.get(peer, 0) >= MAX_SERVING_PER_PEER or (
            sum(self._serving.values()) >= self.limits.max_serving
        ):
            self._refuse(peer, frame.req, ExchangeError("busy", "the custodian is busy"))
            return
        self._serving[peer] = self._serving.get(peer, 0) + 1
        task = asyncio.create_task(self._answer(peer, frame), name="exchange-serve")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, peer: bytes, frame: GetDocumentFrame) -> None:
        try:
            request = SignedRequest(frame.path, frame.time_ms, frame.signer, frame.sig)
            try:
                sealed = await self._serve(request, frame.ticket_height, relayed=True)
            except ExchangeError as exc:
                self._refuse(peer, frame.req, exc)
                return
            step = self.limits.piece_bytes
            for offset in range(0, max(len(sealed), 1), step):
                if not await self._wait_for_room(peer, self.limits.room_bytes):
                    return  # the requester left
                piece = sealed[offset : offset + step]
                self._send(
                    peer, encode_frame(DocumentFrame(frame.req, "", "", len(sealed), offset, piece))
                )
            self._count("served")
            self._observe("serve", "ok")
        except Exception:  # a bug must not kill the node's loop; it is logged
            log.exception("serving a document failed", req=frame.req)
            self._refuse(peer, frame.req, ExchangeError("custodian-error", "internal error"))
        finally:
            left = self._serving.get(peer, 1) - 1
            if left > 0:
                self._serving[peer] = left
            else:
                self._serving.pop(peer, None)

    def _refuse(self, peer: bytes, req: int, exc: ExchangeError) -> None:
        self._count(f"refused:{exc.code}")
        self._observe("serve", exc.code)
        frame = DocumentFrame(req, exc.code, exc.message[:512], 0, 0, b"")
        self._send(peer, encode_frame(frame))

    async def _serve(self, request: SignedRequest, ticket_height: int, *, relayed: bool) -> bytes:
        """The custodian's decision on its own chain; the sealed answer."""
        if relayed:
            headers = {
                HEADER_SIGNER: request.signer.hex(),
                HEADER_TIME: str(request.time_ms),
                HEADER_SIGNATURE: request.sig.hex(),
            }
            try:
                self._relayed.check("GET", request.path, headers, None, self._clock_ms())
            except SignedRequestError as exc:
                raise ExchangeError(exc.code, exc.message, exc.status) from None
        version_id, ticket = _parse_fetch_path(request.path)
        _signer, member = self._member(request.signer.hex())
        await self._wait_for_height(ticket_height)
        state = BlockState(self._state())
        try:
            grant = check_ticket(
                state, version_id=version_id, ticket=ticket, requester_member=str(member["id"])
            )
        except TicketRefused as exc:
            raise ExchangeError(exc.code, exc.message) from None
        try:
            text, salt = await self._off_loop(self.store.get, version_id)
        except Erased as exc:
            raise ExchangeError("erased", str(exc)) from None
        except UnknownDocument:
            raise ExchangeError("not-held", "this node does not hold that version") from None
        except DocumentStoreError as exc:
            log.error("document store refused a read", version_id=version_id, error=str(exc))
            raise ExchangeError("custodian-error", "the custodian cannot read it") from None
        sealed: bytes = await self._off_loop(
            seal_to_member, request.signer, encode_fetch_plaintext(text, salt)
        )
        log.info(
            "document disclosed",
            version_id=version_id,
            ticket=grant.ticket,
            requester=grant.requester_member,
            kind=grant.kind,
        )
        return sealed

    def on_committed(self) -> None:
        """A block was committed here: wake the requests waiting for a height."""
        self._committed.set()
        self._committed = asyncio.Event()

    async def _wait_for_height(self, height: int) -> None:
        """Until this node's chain holds ``height``, woken by each commit, for at most
        ``behind_wait_ms``; else ``custodian-behind``."""
        try:
            async with asyncio.timeout(self.limits.behind_wait_ms / 1000):
                while self._height() < height:
                    await self._committed.wait()
        except TimeoutError:
            raise ExchangeError(
                "custodian-behind",
                f"the custodian's chain is below the ticket's height {height}; retry",
            ) from None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _ticket_height(state: StateReader, ticket: str | None) -> int:
    """Where this node saw the ticket committed (0: not seen)."""
    if ticket is None:
        return 0
    raw = state.state_get(result_key(ticket))
    if raw is None:
        return 0
    height = parse_json(raw).get("height", 0)
    return height if isinstance(height, int) and height > 0 else 0


def _parse_fetch_path(path: str) -> tuple[str, str | None]:
    """The version id and ticket of ``/v1/documents/{version_id}[?access=<ticket>]``."""
    parts = urlsplit(path)
    version_id = parts.path.removeprefix(DOCUMENTS_PATH)
    if not parts.path.startswith(DOCUMENTS_PATH) or not HEX64.fullmatch(version_id):
        raise ExchangeError("malformed", "not a document request")
    query = parse_qs(parts.query, keep_blank_values=True)
    access = query.get("access", [])
    if len(access) > 1 or (access and not HEX64.fullmatch(access[0])) or set(query) - {"access"}:
        raise ExchangeError("malformed", "access must be one 64-hex ticket hash")
    return version_id, access[0] if access else None
