"""Non-validator nodes registered on chain: ``node.register`` and ``node.unregister``.

What it is for: a consortium member runs nodes besides the genesis validators
(an *observer* that follows the chain by block sync and serves the member's own
applications). Any node whose key a member has registered here may link to the
validators and follow the chain; ``registered_nodes`` is what a node asks to
learn those keys. (The daemon's side, accepting links from registered keys,
comes in a later change; this module is the on-chain registry and its queries.)

Transaction types
-----------------
``node.register`` (a key of an active member, any role; that member owns the
node): ``{"node_key": <64 lower-case hex Ed25519 public key>, "p2p": "HOST:PORT",
"role": "observer"}``. ``p2p`` is checked by ``node.net.addr.parse_host_port``,
the one address rule of config, genesis and the transport. Rejections:

* ``bad-role``: ``role`` is not one of ``NODE_ROLES`` (only ``observer`` today);
* ``key-taken``: the key is already a registered node's (of any member). Node
  keys and member signing keys are separate namespaces: only registered nodes
  count, a member's signing key may be registered as a node key;
* ``too-many-nodes``: the owning member already has ``MAX_NODES_PER_MEMBER``.

``node.unregister`` (a key of an active member): ``{"node_key": ...}``.
Rejections: ``unknown-node`` (no node registered with that key), ``not-owner``
(another member registered it). The registry entry is deleted; the result data
keeps the entry and the height it was unregistered at, so the fact stays on the
chain (``GET /v1/txs/{hash}``).

State (canonical JSON, integers only, read in key order):

* ``node/<hex key>``: ``{"node_key", "member", "p2p", "role", "registered_height"}``;
* ``nodeby/<member id>/<hex key>``: ``1``, the index of a member's nodes (the cap,
  ``GET /v1/nodes?member=``). ``node/`` never covers ``nodeby/`` (the slash).

A p2p address a rejection names is worded here, not by the address parser: a
rejected transaction's message is part of its committed result (see
``node/ledger/schema.py``). Which addresses are valid is the parser's rule, so a
change to ``parse_host_port`` changes which ``node.register`` transactions commit:
make it with a chain upgrade in mind.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from typing import Any, Final, TypedDict, cast

from node.ledger.context import ExecContext
from node.ledger.domain import Domain, Query, hex64_param, ids_after, int_param, pattern_param
from node.ledger.domains.governance import MEMBER_ID
from node.ledger.members import require_member
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Hex64, HostPort, Obj, Str
from node.ledger.state import BlockState, StateReader

NODE_ROLES: Final = ("observer",)  # more roles may come; each is a code on the chain
MAX_NODES_PER_MEMBER: Final = 16
MAX_LIST: Final = 500
MAX_ROLE_LEN: Final = 32

NODE_PREFIX: Final = b"node/"
BY_MEMBER_PREFIX: Final = b"nodeby/"


class RegisteredNode(TypedDict):
    """One registry entry, as stored under ``node/<hex key>`` and as the queries show it."""

    node_key: str
    member: str
    p2p: str
    role: str
    registered_height: int


def node_key(key_hex: str) -> bytes:
    return NODE_PREFIX + key_hex.encode()


def member_prefix(member_id: str) -> bytes:
    return BY_MEMBER_PREFIX + member_id.encode() + b"/"


def member_index_key(member_id: str, key_hex: str) -> bytes:
    return member_prefix(member_id) + key_hex.encode()


# ------------------------------------------------------------------ reading the registry
def _entry(state: BlockState, key_hex: str) -> RegisteredNode | None:
    return cast("RegisteredNode | None", state.get(node_key(key_hex)))


def _entries(
    state: BlockState, member: str | None = None, after: str = ""
) -> Iterator[RegisteredNode]:
    """Registry entries in node-key order, of one member if ``member`` is given."""
    if member is None:
        for _, value in ids_after(state, NODE_PREFIX, after):
            yield cast(RegisteredNode, value)
        return
    for key_hex, _ in ids_after(state, member_prefix(member), after):
        found = _entry(state, key_hex)
        if found is not None:
            yield found


def registered_nodes(reader: StateReader, member: str | None = None) -> list[RegisteredNode]:
    """Every registered node (of one member if ``member`` is given), in node-key order.

    ``reader`` is the committed state (a chain store, or a ``BlockState``'s base).
    A node's peer-link check calls this, or ``registered_node`` for one key."""
    return list(_entries(BlockState(reader), member))


def registered_node(reader: StateReader, key_hex: str) -> RegisteredNode | None:
    """The registry entry of node key ``key_hex`` (64 lower-case hex), or None."""
    return _entry(BlockState(reader), key_hex)


# ------------------------------------------------------------------ execution
def _authorize(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def _apply_register(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    member_id: str = require_member(ctx.state, ctx.tx.signer)["id"]
    key_hex: str = body["node_key"]
    if body["role"] not in NODE_ROLES:
        raise Rejection("bad-role", f"role must be one of {', '.join(NODE_ROLES)}")
    existing = _entry(ctx.state, key_hex)
    if existing is not None:
        raise Rejection(
            "key-taken",
            f"node key registered by member {existing['member']} "
            f"at height {existing['registered_height']}",
        )
    # at most MAX_NODES_PER_MEMBER index keys to count: cheap and in key order
    owned = sum(1 for _ in ctx.state.iter_prefix(member_prefix(member_id)))
    if owned >= MAX_NODES_PER_MEMBER:
        raise Rejection(
            "too-many-nodes",
            f"member {member_id} has {owned} registered nodes, the most allowed "
            f"({MAX_NODES_PER_MEMBER}); unregister one first",
        )
    entry: RegisteredNode = {
        "node_key": key_hex,
        "member": member_id,
        "p2p": body["p2p"],
        "role": body["role"],
        "registered_height": ctx.block.height,
    }
    ctx.state.put(node_key(key_hex), entry)
    ctx.state.put(member_index_key(member_id, key_hex), 1)
    return dict(entry)


def _apply_unregister(ctx: ExecContext) -> dict[str, Any]:
    member_id: str = require_member(ctx.state, ctx.tx.signer)["id"]
    key_hex: str = ctx.tx.body["node_key"]
    existing = _entry(ctx.state, key_hex)
    if existing is None:
        raise Rejection("unknown-node", "no node is registered with this key")
    if existing["member"] != member_id:
        raise Rejection(
            "not-owner", f"the node is registered by member {existing['member']}, not {member_id}"
        )
    ctx.state.delete(node_key(key_hex))
    ctx.state.delete(member_index_key(member_id, key_hex))
    # the entry leaves the state; the result (on the chain) keeps what it was
    return {**existing, "unregistered_height": ctx.block.height}


# ------------------------------------------------------------------ queries
def _q_nodes(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    member = query.get("member")
    if member is not None:
        pattern_param(member, "member", MEMBER_ID)
    after = query.get("after")
    if after is not None:
        hex64_param(after, "after")
    limit = int_param(query, "limit", 100, 1, MAX_LIST)
    nodes = list(itertools.islice(_entries(state, member, after or ""), limit))
    return {"nodes": nodes, "next": nodes[-1]["node_key"] if len(nodes) == limit else None}


def _q_node(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    found = _entry(state, hex64_param(path["node_key"], "node key"))
    return None if found is None else dict(found)


# ------------------------------------------------------------------ the domain
NODE_REGISTER = TxType(
    name="node.register",
    schema=Obj(
        {"node_key": Hex64(), "p2p": HostPort(), "role": Str(max_len=MAX_ROLE_LEN)},
    ),
    authorize=_authorize,
    apply=_apply_register,
    summary="register a node key of the signer's member (an observer) that may follow the chain",
)
NODE_UNREGISTER = TxType(
    name="node.unregister",
    schema=Obj({"node_key": Hex64()}),
    authorize=_authorize,
    apply=_apply_unregister,
    summary="remove a node the signer's member registered",
)

DOMAIN = Domain(
    name="nodes",
    tx_types=(NODE_REGISTER, NODE_UNREGISTER),
    queries=(
        Query(
            "/nodes",
            _q_nodes,
            "Registered (non-validator) nodes in node-key order, all or one member's",
            ("member", "after", "limit"),
        ),
        Query("/nodes/{node_key}", _q_node, "One registered node by its key"),
    ),
)
