"""The admin API: operators inspect a node here (127.0.0.1 by default).

Every route needs ``Authorization: Bearer <token>`` (the token file is made
at init, mode 0600); without it the answer is 401. ``/health`` is 200 when
the node is healthy and 503 with the reasons otherwise.
"""

from __future__ import annotations

import hmac

from aiohttp import web

from node.api.errors import Handler, error_response, json_errors
from node.api.facade import NodeFacade

NODE_KEY: web.AppKey[NodeFacade] = web.AppKey("admin-node", NodeFacade)
TOKEN_KEY: web.AppKey[str] = web.AppKey("admin-token", str)


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    want = request.app[TOKEN_KEY]
    got = request.headers.get("Authorization", "")
    if not (got.startswith("Bearer ") and hmac.compare_digest(got[7:].strip(), want)):
        return error_response(401, "unauthorized", "missing or wrong bearer token")
    return await handler(request)


def _node(request: web.Request) -> NodeFacade:
    return request.app[NODE_KEY]


async def health(request: web.Request) -> web.Response:
    ok, reasons = _node(request).health()
    return web.json_response({"ok": ok, "reasons": reasons}, status=200 if ok else 503)


async def status(request: web.Request) -> web.Response:
    return web.json_response(_node(request).status())


async def peers(request: web.Request) -> web.Response:
    return web.json_response({"peers": _node(request).peers_json()})


async def consensus(request: web.Request) -> web.Response:
    return web.json_response(_node(request).consensus_json())


async def mempool(request: web.Request) -> web.Response:
    return web.json_response(_node(request).mempool_json())


async def validators(request: web.Request) -> web.Response:
    return web.json_response({"validators": _node(request).validators_json()})


async def metrics(request: web.Request) -> web.Response:
    body = _node(request).metrics_text()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


def admin_app(node: NodeFacade, token: str) -> web.Application:
    app = web.Application(middlewares=[json_errors, bearer_auth])
    app[NODE_KEY] = node
    app[TOKEN_KEY] = token
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/peers", peers)
    app.router.add_get("/consensus", consensus)
    app.router.add_get("/mempool", mempool)
    app.router.add_get("/validators", validators)
    app.router.add_get("/metrics", metrics)
    return app
