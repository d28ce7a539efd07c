"""``data.anchor``: a member anchors the SHA-256 digest of a document.

Body: ``digest`` (64 lowercase hex), optional ``kind`` (at most 64 chars, no
PHI). The first anchor of a digest wins; anchoring it again is rejected with
the original location, so the anchor is a proof of existence at a time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from node.ledger.context import ExecContext
from node.ledger.domain import Domain, Query, hex64_param
from node.ledger.members import require_member
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Hex64, Obj, Str
from node.ledger.state import BlockState

KIND = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


def anchor_key(digest: str) -> bytes:
    return b"anchor/" + digest.encode()


def _authorize(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def _apply(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    key = anchor_key(body["digest"])
    existing = ctx.state.get(key)
    if existing is not None:
        raise Rejection(
            "already-anchored",
            f"digest anchored at height {existing['height']} by tx {existing['tx']}",
        )
    member = ctx.state.get(b"memberkey/" + ctx.tx.signer.encode())
    record = {
        "digest": body["digest"],
        "kind": body.get("kind", ""),
        "member": member,
        "signer": ctx.tx.signer,
        "tx": ctx.tx.hash,
        "height": ctx.block.height,
        "time": ctx.block.time_ms,
    }
    ctx.state.put(key, record)
    return {"digest": body["digest"], "height": ctx.block.height}


def _query_anchor(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    found: dict[str, Any] | None = state.get(anchor_key(hex64_param(path["digest"], "digest")))
    return found


DATA_ANCHOR = TxType(
    name="data.anchor",
    schema=Obj({"digest": Hex64(), "kind": Str(max_len=64, pattern=KIND, optional=True)}),
    authorize=_authorize,
    apply=_apply,
    summary="anchor the SHA-256 digest of a document (proof of existence)",
)

DOMAIN = Domain(
    name="anchor",
    tx_types=(DATA_ANCHOR,),
    queries=(Query("/anchors/{digest}", _query_anchor, "Who anchored a document digest, when"),),
)
