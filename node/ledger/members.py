"""Members (institutions) and their roles and signing keys, as app state.

Genesis writes the founding members; governance transactions change them.
A signing key belongs to at most one member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ledger.result import Rejection
from node.ledger.state import BlockState

ROLES = (
    "hospital",
    "clinic",
    "manufacturer",
    "distributor",
    "pharmacy",
    "insurer",
    "sponsor",
    "regulator",
    "auditor",
)


def member_key(member_id: str) -> bytes:
    return b"member/" + member_id.encode()


def signer_key(pubkey_hex: str) -> bytes:
    return b"memberkey/" + pubkey_hex.encode()


def put_member(state: BlockState, member: dict[str, Any]) -> None:
    state.put(member_key(member["id"]), member)
    for k in member["keys"]:
        state.put(signer_key(k), member["id"])


def member_of(state: BlockState, pubkey_hex: str) -> dict[str, Any] | None:
    member_id = state.get(signer_key(pubkey_hex))
    if member_id is None:
        return None
    member: dict[str, Any] | None = state.get(member_key(member_id))
    return member


def is_active(member: Mapping[str, Any] | None, *roles: str) -> bool:
    """Is ``member`` (a member record, or None for no member) active and holding one
    of ``roles`` (any role if none)? A record without ``status`` is active."""
    return (
        member is not None
        and member.get("status", "active") == "active"
        and (not roles or any(r in member["roles"] for r in roles))
    )


def require_member(state: BlockState, pubkey_hex: str, *roles: str) -> dict[str, Any]:
    """The active member owning this key, holding one of ``roles`` (any role if none)."""
    member = member_of(state, pubkey_hex)
    if member is None or not is_active(member):
        raise Rejection("unauthorized", "signer is not a key of an active member")
    if roles and not any(r in member["roles"] for r in roles):
        raise Rejection(
            "unauthorized", f"member {member['id']} lacks a role among {', '.join(roles)}"
        )
    return member
