"""The client API: what institutions' applications call.

``POST /v1/txs`` (a signed transaction as JSON: ``202 {"hash"}``, or an error
with a stable code: 400 malformed/bad signature/replay, 413 too large, 503
mempool full), ``GET /v1/txs/{hash}``, ``GET /v1/blocks/latest``,
``GET /v1/blocks/{height}``, ``GET /v1/proofs/{tx_hash}``, the domain
queries, ``POST /v1/documents`` and ``GET /v1/documents/{version_id}`` (node/api/documents.py),
``GET /v1/validators[?height=H]`` (the validator set of a height and a
committed change not in force yet), ``GET /v1/info`` (chain id, genesis hash,
height: what a client needs to build a transaction) and ``GET /openapi.json``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from node.api.documents import add_document_routes
from node.api.errors import ApiError, api_errors, json_errors
from node.api.facade import NodeFacade
from node.api.listener import read_body, track_requests
from node.api.openapi import openapi_document
from node.api.views import NotBackfilled
from node.core.hexstr import HEX64
from node.core.uint import parse_uint
from node.ledger.domain import Query
from node.ledger.domains import DOMAINS
from node.ledger.domains.epoch_attest import NotAttested

MAX_BODY = 1 << 20

NODE_KEY: web.AppKey[NodeFacade] = web.AppKey("node", NodeFacade)


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


def query_handler(query: Query) -> Callable[[web.Request], Awaitable[web.Response]]:
    """An aiohttp handler running one ledger-domain query on the committed state."""

    async def handle(request: web.Request) -> web.Response:
        with api_errors():
            data = _node(request).run_query(query.fn, request.match_info, request.query)
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


def client_app(node: NodeFacade) -> web.Application:
    app = web.Application(middlewares=[track_requests, json_errors], client_max_size=MAX_BODY)
    app[NODE_KEY] = node
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
