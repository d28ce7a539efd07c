"""The admin API: operators inspect a node here (127.0.0.1 by default).

Every route needs ``Authorization: Bearer <token>`` (the token file is made
at init, mode 0600); without it the answer is 401. ``/health`` is 200 when
the node is healthy and 503 with the reasons otherwise. ``/blocks/recent``
summarises the last committed blocks (for the dashboard).

The one exception is the operator dashboard, ``GET /ui`` and its assets
(``UI_PATHS``): static files that hold no data and no secret. The page takes
the token from its URL fragment (``/ui#token=...``, never sent to the server)
or a form, and calls the JSON routes above with it (``docs/dashboard.md``).

Mutating routes exist only when ``[admin] enable_mutations = true`` (otherwise
they are not registered at all, so they answer 404):

- ``POST /admin/backup`` (optional JSON ``{"name": str, "include_node_key": bool}``)
  writes a consistent backup to ``<home>/backups/<name>`` on the node's machine
  and answers ``{"path", "manifest"}`` (the manifest without genesis and key);
- ``POST /admin/peers/{node_id}/disconnect`` closes the link to a peer now (it
  is redialled as usual); 404 when there is no link.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from node.api.errors import Handler, error_response, json_errors
from node.api.facade import NodeFacade
from node.api.listener import read_body, track_requests
from node.core.hexstr import HEX64
from node.core.uint import parse_uint

NODE_KEY: web.AppKey[NodeFacade] = web.AppKey("admin-node", NodeFacade)
TOKEN_KEY: web.AppKey[str] = web.AppKey("admin-token", str)


class Mutations(Protocol):
    """What the mutating admin routes call (implemented by ``node.daemon.Node``)."""

    @property
    def backup_dir(self) -> Path: ...

    async def backup_to(self, path: Path, *, include_node_key: bool = False) -> dict[str, Any]: ...

    async def disconnect_peer(self, node_id: bytes) -> bool: ...


MUT_KEY: web.AppKey[Mutations] = web.AppKey("admin-mutations", Mutations)
BACKUP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
RECENT_BLOCKS_DEFAULT = 20
RECENT_BLOCKS_MAX = 100

# The dashboard: URL path -> (file in node/api/ui, content type). Served without
# the token; every other path goes through bearer_auth.
UI_FILES: dict[str, tuple[str, str]] = {
    "/ui": ("index.html", "text/html"),
    "/ui/app.js": ("app.js", "text/javascript"),
    "/ui/style.css": ("style.css", "text/css"),
}
UI_PATHS = frozenset([*UI_FILES, "/ui/"])
# The page loads only its own files and calls only this listener.
UI_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def ui_asset(name: str) -> bytes:
    """One dashboard file shipped as package data (``node/api/ui/<name>``)."""
    return resources.files("node.api").joinpath("ui", name).read_bytes()


@web.middleware
async def bearer_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in ("GET", "HEAD") and request.path in UI_PATHS:
        return await handler(request)  # static, no data: the page sends the token itself
    # bytes, not str: compare_digest refuses str with non-ASCII characters, and a
    # header may hold any (aiohttp decodes it as UTF-8 with surrogate escapes)
    want = request.app[TOKEN_KEY].encode()
    got = request.headers.get("Authorization", "")
    offered = got[7:].strip().encode("utf-8", "surrogateescape")
    if not (got.startswith("Bearer ") and hmac.compare_digest(offered, want)):
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


async def recent_blocks(request: web.Request) -> web.Response:
    raw = request.query.get("limit", str(RECENT_BLOCKS_DEFAULT))
    limit = parse_uint(raw, 3)
    if limit is None or not 1 <= limit <= RECENT_BLOCKS_MAX:
        return error_response(
            400, "malformed", f"query limit must be an integer 1..{RECENT_BLOCKS_MAX}, got {raw!r}"
        )
    return web.json_response({"blocks": _node(request).recent_blocks_json(limit)})


def _ui_handler(body: bytes, content_type: str) -> Handler:
    async def serve(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=body, content_type=content_type, charset="utf-8", headers=UI_HEADERS
        )

    return serve


async def ui_slash(request: web.Request) -> web.StreamResponse:
    # the page's links are relative to /ui; the fragment (token) survives a redirect
    raise web.HTTPPermanentRedirect(location="../ui")


async def post_backup(request: web.Request) -> web.Response:
    mut = request.app[MUT_KEY]
    raw = await read_body(request)
    try:
        doc: Any = json.loads(raw) if raw.strip() else {}
    except ValueError:
        return error_response(400, "malformed", "body must be a JSON object")
    if not isinstance(doc, dict):
        return error_response(400, "malformed", "body must be a JSON object")
    name = doc.get("name") or time.strftime("backup-%Y%m%dT%H%M%SZ.hbk", time.gmtime())
    if not isinstance(name, str) or not BACKUP_NAME.fullmatch(name):
        return error_response(400, "malformed", "name must match " + BACKUP_NAME.pattern)
    include_key = doc.get("include_node_key", False)
    if not isinstance(include_key, bool):
        return error_response(400, "malformed", "include_node_key must be a boolean")
    path = mut.backup_dir / name
    if path.exists():
        return error_response(409, "exists", f"{path} already exists")
    manifest = await mut.backup_to(path, include_node_key=include_key)
    return web.json_response({"path": str(path), "manifest": manifest})


async def post_disconnect(request: web.Request) -> web.Response:
    raw = request.match_info["node_id"]
    if not HEX64.fullmatch(raw):
        return error_response(400, "malformed", "node_id must be 64 lowercase hex characters")
    if not await request.app[MUT_KEY].disconnect_peer(bytes.fromhex(raw)):
        return error_response(404, "not-connected", f"no link to peer {raw[:16]}")
    return web.json_response({"disconnected": raw})


def admin_app(node: NodeFacade, token: str, mutations: Mutations | None = None) -> web.Application:
    app = web.Application(middlewares=[track_requests, json_errors, bearer_auth])
    app[NODE_KEY] = node
    app[TOKEN_KEY] = token
    app.router.add_get("/health", health)
    app.router.add_get("/status", status)
    app.router.add_get("/peers", peers)
    app.router.add_get("/consensus", consensus)
    app.router.add_get("/mempool", mempool)
    app.router.add_get("/validators", validators)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/blocks/recent", recent_blocks)
    for path, (name, content_type) in UI_FILES.items():
        app.router.add_get(path, _ui_handler(ui_asset(name), content_type))
    app.router.add_get("/ui/", ui_slash)
    if mutations is not None:  # [admin] enable_mutations
        app[MUT_KEY] = mutations
        app.router.add_post("/admin/backup", post_backup)
        app.router.add_post("/admin/peers/{node_id}/disconnect", post_disconnect)
    return app
