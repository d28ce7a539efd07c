"""The client API: what institutions' applications call.

``POST /v1/txs`` (a signed transaction as JSON: ``202 {"hash"}``, or an error
with a stable code: 400 malformed/bad signature/replay, 413 too large, 503
mempool full), ``GET /v1/txs/{hash}``, ``GET /v1/blocks/latest``,
``GET /v1/blocks/{height}``, ``GET /v1/proofs/{tx_hash}``, the domain
queries, ``POST /v1/documents`` and ``GET /v1/documents/{version_id}`` (node/api/documents.py),
``GET /v1/validators[?height=H]`` (the validator set of a height and a
committed change not in force yet), ``GET /v1/info`` (chain id, genesis hash,
height: what a client needs to build a transaction) and ``GET /openapi.json``.

A query with a ``PatientScope`` (a patient's consents, disclosures, coverage,
trial participation: docs/privacy.md) answers only a signed request
(``X-Hygeia-Signer``, ``X-Hygeia-Time``, ``X-Hygeia-Signature``, checked by one
``RequestVerifier`` per app against the node's clock): 401 ``signature-required``
without the headers, 401 ``bad-signature``, ``stale`` or ``replayed`` (503
``replay-cache-full``) as the verifier says, 403 ``not-entitled`` when the signer
is neither the patient key nor a member the scope admits by the committed state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from node.api.documents import add_document_routes
from node.api.errors import ApiError, api_errors, json_errors
from node.api.facade import NodeFacade
from node.api.listener import read_body, track_requests
from node.api.openapi import openapi_document
from node.api.views import NotBackfilled
from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.engine.driver import wall_clock_ms
from node.exchange.signed_request import (
    HEADER_SIGNATURE,
    HEADER_SIGNER,
    HEADER_TIME,
    RequestVerifier,
    SignedRequestError,
    header_value,
)
from node.ledger.domain import PatientScope, Query, QueryFn
from node.ledger.domains import DOMAINS
from node.ledger.domains.epoch_attest import NotAttested
from node.ledger.state import BlockState

MAX_BODY = 1 << 20

NODE_KEY: web.AppKey[NodeFacade] = web.AppKey("node", NodeFacade)
Clock = Callable[[], int]
# the patient-scoped queries' signed requests: one verifier (replay memory) and the clock
READS_KEY: web.AppKey[tuple[RequestVerifier, Clock]] = web.AppKey("reads", tuple)


def _node(request: web.Request) -> NodeFacade:
    return request.app[NODE_KEY]


def _hex64(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not HEX64.fullmatch(value):
        raise ApiError(400, "malformed", f"{name} must be 64 lowercase hex characters")
    return value


async def post_tx(request: web.Request) -> web.Response:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "too-large", f"request body over {MAX_BODY} bytes")
    data = await read_body(request)
    tx_hash = await _node(request).submit_tx(data)
    return web.json_response({"hash": tx_hash}, status=202)


async def get_tx(request: web.Request) -> web.Response:
    return web.json_response(_node(request).tx_status(_hex64(request, "hash")))


async def get_block(request: web.Request) -> web.Response:
    raw = request.match_info["height"]
    if raw == "latest":
        height = None
    elif (height := parse_uint(raw, 18)) is None:
        raise ApiError(400, "malformed", "height must be a non-negative integer or 'latest'")
    try:
        block = _node(request).block_json(height)
    except NotBackfilled as exc:
        raise ApiError(404, "not-yet-backfilled", str(exc)) from None
    if block is None:
        raise ApiError(404, "not-found", f"no block at height {raw}")
    return web.json_response(block)


async def get_proof(request: web.Request) -> web.Response:
    tx_hash = _hex64(request, "hash")
    try:
        proof = _node(request).proof_json(tx_hash)
    except NotAttested as exc:
        raise ApiError(503, "not-attested", str(exc)) from None
    except NotBackfilled as exc:
        raise ApiError(404, "not-yet-backfilled", str(exc)) from None
    if proof is None:
        raise ApiError(404, "not-found", f"transaction {tx_hash} is not committed here")
    return web.json_response(proof)


_SIGNED_HEADERS = (HEADER_SIGNER, HEADER_TIME, HEADER_SIGNATURE)


class NotEntitled(Exception):
    """The signer of a patient-scoped read is not entitled to it (403)."""


def _signer(request: web.Request) -> str:
    """The hex key that signed ``request`` (a GET: no body), or the 401 refusal."""
    if all(header_value(request.headers, h) is None for h in _SIGNED_HEADERS):
        raise ApiError(
            401,
            "signature-required",
            f"{request.path} reads a patient's data: sign the request "
            f"({', '.join(_SIGNED_HEADERS)}) with the patient's key or an entitled member's",
        )
    verifier, clock = request.app[READS_KEY]
    try:
        signer = verifier.check(request.method, request.raw_path, request.headers, None, clock())
    except SignedRequestError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    return signer.hex()


def scoped(fn: QueryFn, scope: PatientScope, signer_hex: str) -> QueryFn:
    """``fn`` run only when ``scope`` entitles ``signer_hex`` by the same snapshot of
    the committed state; ``NotEntitled`` otherwise."""

    def run(state: BlockState, path: Mapping[str, str], query: Mapping[str, str]) -> Any:
        if not scope.entitled(state, path, signer_hex):
            raise NotEntitled(
                f"key {signer_hex} may not read this: only the patient key "
                f"({{{scope.param}}}) or {scope.who}, an active member"
            )
        return fn(state, path, query)

    return run


def query_handler(query: Query) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler running one ledger-domain query on the committed state
    (a patient-scoped one for an entitled signer only)."""

    async def handle(request: web.Request) -> web.Response:
        fn = query.fn
        if query.scope is not None:
            fn = scoped(fn, query.scope, _signer(request))
        try:
            with api_errors():
                data = _node(request).run_query(fn, request.match_info, request.query)
        except NotEntitled as exc:
            raise ApiError(403, "not-entitled", str(exc)) from None
        if data is None:
            raise ApiError(404, "not-found", f"nothing at {request.path}")
        return web.json_response(data)

    return handle


async def get_validators(request: web.Request) -> web.Response:
    raw = request.query.get("height")
    height = None if raw is None else parse_uint(raw, 18)
    if raw is not None and height is None:
        raise ApiError(400, "malformed", "height must be a non-negative integer")
    return web.json_response(_node(request).validator_set_json(height))


async def get_info(request: web.Request) -> web.Response:
    return web.json_response(_node(request).info())


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


def client_app(node: NodeFacade, *, clock_ms: Clock = wall_clock_ms) -> web.Application:
    """The client API of ``node``; ``clock_ms`` (unix ms) judges signed requests' times."""
    app = web.Application(middlewares=[track_requests, json_errors], client_max_size=MAX_BODY)
    app[NODE_KEY] = node
    app[READS_KEY] = (RequestVerifier(), clock_ms)
    app.router.add_post("/v1/txs", post_tx)
    app.router.add_get("/v1/txs/{hash}", get_tx)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/proofs/{hash}", get_proof)
    for domain in DOMAINS:
        for query in domain.queries:
            app.router.add_get("/v1" + query.path, query_handler(query))
    if node.documents is not None:
        add_document_routes(app, node.documents)
    app.router.add_get("/v1/validators", get_validators)
    app.router.add_get("/v1/info", get_info)
    app.router.add_get("/openapi.json", get_openapi)
    return app
