"""Governance: members, roles and keys change by a 2/3 vote of the active members.

Transaction types
-----------------
``gov.propose`` (a key of an active member): ``{"action": {...}, "expires_ms": int,
"note"?: str}``. The proposal id is the transaction hash. ``action.type`` is one of

* ``add-member``: ``{"type", "id", "name", "roles": [...], "keys": [hex, ...]}``
* ``suspend-member``: ``{"type", "id"}``
* ``reactivate-member``: ``{"type", "id"}``
* ``rotate-keys``: ``{"type", "id", "add": [hex, ...], "remove": [hex, ...]}``
* ``add-validator``: ``{"type", "member", "name", "node_key", "p2p"}``
* ``remove-validator``: ``{"type", "node_key"}``
* ``replace-validator-key``: ``{"type", "node_key", "new_node_key", "p2p"}``

``expires_ms`` is a block-time deadline: later than the current block time and at
most ``MAX_PROPOSAL_TTL_MS`` (30 days) ahead. The proposer's vote counts as approve.

``gov.vote`` (a key of an active member): ``{"proposal": id, "approve": bool}``. One
vote per member: a later vote of the same member replaces the earlier one while the
proposal is open. After each vote (and after the proposal itself) the votes of the
members active *at that moment* are counted against n = the number of active members:

* approvals >= ceil(2n/3)  -> the action executes in the same apply (``executed``), or,
  if it is no longer valid (the key was taken meanwhile, ...), the proposal closes as
  ``failed`` with the reason; the vote itself is still ``ok``;
* n - rejections < ceil(2n/3) -> it can no longer pass: ``defeated``;
* otherwise it stays ``open``.

A proposal whose deadline has passed (block time > ``expires_ms``) can no longer be
voted on or executed; it reads as ``expired`` and is closed for good by the next
``gov.propose``.

Self-service key rotation
-------------------------
``member.rotate_key`` (a key S of an active member): ``{"new_key": N, "proof": sig}``
where ``proof`` is N's Ed25519 signature of ``rotation_proof_message(chain_id, member,
S, N)``. N joins the member at once; S keeps signing (the overlap: transactions in
flight still land) until ``member.finish_rotation`` signed by N retires S. Safety: it
changes only the signer's own member, never its roles or status; it can retire only
the key that signed it, never another key of the member; N must be unowned and prove
possession; at most one rotation is pending per member; the member never has zero keys.
A stolen key is an incident for governance (``suspend-member``, ``rotate-keys``).

Validators
----------
The validator set is state: a list of epochs (``node/ledger/validators.py``), genesis's
validators being epoch 0. A validator action that executes in the block at height H
writes the next epoch (number: the latest's + 1), in force from
``ctx.epoch_rule.first_height(H)`` = ``consensus.epochs.boundary(H, checkpoint_interval,
watermark_window) + 1``: ``add-validator`` appends the validator at the end,
``remove-validator`` deletes its entry (those after it move up one index),
``replace-validator-key`` keeps its position, name and member and sets ``node_key``
and ``p2p``. One change at a time: while the latest epoch's ``from_height`` > H
(a committed change not in force yet) every validator action is refused
(``change-in-flight``), at proposal and at execution. Other refusals:
``unknown-validator`` (``node_key`` not in the set), ``last-validator``,
``key-taken`` (``node_key``/``new_node_key`` already in the set),
``unknown-member``/``not-active`` (add-validator's member), ``too-many-validators``
(more than ``MAX_VALIDATORS``).

State: ``proposal/<id>`` (the proposal with its votes), ``govopen/<id>`` (index of
open proposals), ``member/<id>`` and ``memberkey/<hex>`` (see ``members.py``),
``epoch/<number>`` (see ``validators.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from node.core.codec import canonical_json
from node.core.keys import verify
from node.ledger.context import ExecContext
from node.ledger.domain import Domain, Query, hex64_param, pattern_param
from node.ledger.members import (
    ROLES,
    is_active,
    member_key,
    put_member,
    require_member,
    signer_key,
)
from node.ledger.registry import TxType
from node.ledger.result import Rejection
from node.ledger.schema import Bool, Check, Hex64, HostPort, Int, List, Obj, Str, malformed
from node.ledger.state import BlockState, block_time
from node.ledger.validators import (
    MAX_VALIDATORS,
    EpochRecord,
    ValidatorEntry,
    latest_epoch,
    put_epoch,
)

DAY_MS = 86_400_000
MAX_PROPOSAL_TTL_MS = 30 * DAY_MS
MAX_KEYS_PER_MEMBER = 8
MAX_MEMBERS = 512
MAX_OPEN_PER_PROPOSER = 8
MAX_LIST = 500
MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# not node.core.hexstr.HEX128: this pattern's text is part of a rejected rotation's
# committed result ("must match [0-9a-f]{128}"), so changing it would change state roots
HEX128 = re.compile(r"[0-9a-f]{128}")
NOTE = re.compile(r"[A-Za-z0-9 .,:;()/#_+-]*")

STATUSES = ("open", "executed", "defeated", "failed", "expired")
VALIDATOR_ACTIONS = ("add-validator", "remove-validator", "replace-validator-key")
ACTIONS = ("add-member", "suspend-member", "reactivate-member", "rotate-keys", *VALIDATOR_ACTIONS)


def proposal_key(proposal_id: str) -> bytes:
    return b"proposal/" + proposal_id.encode()


def open_key(proposal_id: str) -> bytes:
    return b"govopen/" + proposal_id.encode()


def threshold(n_active: int) -> int:
    """ceil(2n/3) in integers: 4 -> 3, 7 -> 5, 1 -> 1."""
    return (2 * n_active + 2) // 3


def rotation_proof_message(chain_id: str, member_id: str, old_key: str, new_key: str) -> bytes:
    """What the new key signs in ``member.rotate_key`` (proof of possession)."""
    return canonical_json(
        {
            "chain_id": chain_id,
            "member": member_id,
            "new_key": new_key,
            "old_key": old_key,
            "purpose": "hygeia/member.rotate_key/v1",
        }
    )


# ------------------------------------------------------------------ schema

_ID = Str(max_len=64, pattern=MEMBER_ID)
_KEYS = List(Hex64(), max_items=MAX_KEYS_PER_MEMBER, unique=True)

ACTION_SCHEMAS: dict[str, Obj] = {
    "add-member": Obj(
        {
            "type": Str(),
            "id": _ID,
            "name": Str(max_len=128),
            "roles": List(Str(choices=ROLES), min_items=1, max_items=len(ROLES), unique=True),
            "keys": List(Hex64(), min_items=1, max_items=MAX_KEYS_PER_MEMBER, unique=True),
        }
    ),
    "suspend-member": Obj({"type": Str(), "id": _ID}),
    "reactivate-member": Obj({"type": Str(), "id": _ID}),
    "rotate-keys": Obj({"type": Str(), "id": _ID, "add": _KEYS, "remove": _KEYS}),
    "add-validator": Obj(
        {
            "type": Str(),
            "member": _ID,
            "name": Str(max_len=64, pattern=MEMBER_ID),
            "node_key": Hex64(),
            "p2p": HostPort(),
        }
    ),
    "remove-validator": Obj({"type": Str(), "node_key": Hex64()}),
    "replace-validator-key": Obj(
        {"type": Str(), "node_key": Hex64(), "new_node_key": Hex64(), "p2p": HostPort()}
    ),
}


class Action(Check):
    """One of the governance actions, chosen by its ``type`` field."""

    def check(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise malformed(path, "must be an object")
        kind = value.get("type")
        if not isinstance(kind, str) or kind not in ACTION_SCHEMAS:
            raise malformed(f"{path}.type", f"must be one of {', '.join(ACTIONS)}")
        ACTION_SCHEMAS[kind].check(value, path)
        if kind == "rotate-keys":
            if not value["add"] and not value["remove"]:
                raise malformed(path, "add or remove must list a key")
            for i, k in enumerate(value["remove"]):
                if k in value["add"]:
                    raise malformed(f"{path}.remove[{i}]", "key is also in add")


PROPOSE_SCHEMA = Obj(
    {
        "action": Action(),
        "expires_ms": Int(min=1),
        "note": Str(max_len=140, pattern=NOTE, optional=True),
    }
)
VOTE_SCHEMA = Obj({"proposal": Hex64(), "approve": Bool()})
ROTATE_SCHEMA = Obj({"new_key": Hex64(), "proof": Str(max_len=128, min_len=128, pattern=HEX128)})
FINISH_SCHEMA = Obj({})


# ------------------------------------------------------------------ members


def _member(state: BlockState, member_id: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = state.get(member_key(member_id))
    return found


def _members(state: BlockState) -> list[dict[str, Any]]:
    return [m for _, m in state.iter_prefix(b"member/")]


def _active_ids(state: BlockState) -> list[str]:
    return [m["id"] for m in _members(state) if is_active(m)]


def _check_action(ctx: ExecContext, action: dict[str, Any]) -> None:
    """Is the action valid against the state now? Rejection with a stable code if not."""
    kind = action["type"]
    if kind in VALIDATOR_ACTIONS:
        _check_validator_action(ctx, action)
        return
    state = ctx.state
    member = _member(state, action["id"])
    if kind == "add-member":
        if member is not None:
            raise Rejection("member-exists", f"member {action['id']} already exists")
        if len(_members(state)) >= MAX_MEMBERS:
            raise Rejection("too-many-members", f"at most {MAX_MEMBERS} members")
        for k in action["keys"]:
            _check_free_key(state, k)
        return
    if member is None:
        raise Rejection("unknown-member", f"no member {action['id']}")
    status = member.get("status", "active")
    if kind == "suspend-member":
        if status != "active":
            raise Rejection("not-active", f"member {action['id']} is not active")
        if len(_active_ids(state)) <= 1:
            raise Rejection("last-active-member", "cannot suspend the last active member")
    elif kind == "reactivate-member":
        if status != "suspended":
            raise Rejection("not-suspended", f"member {action['id']} is not suspended")
    else:  # rotate-keys
        for k in action["remove"]:
            if k not in member["keys"]:
                raise Rejection("not-member-key", f"key {k[:16]}... is not a key of {member['id']}")
        for k in action["add"]:
            _check_free_key(state, k)
        left = len(member["keys"]) - len(action["remove"]) + len(action["add"])
        if left < 1:
            raise Rejection("last-key", "a member must keep at least one key")
        if left > MAX_KEYS_PER_MEMBER:
            raise Rejection("too-many-keys", f"a member has at most {MAX_KEYS_PER_MEMBER} keys")


def _current_epoch(state: BlockState) -> EpochRecord:
    """The latest epoch of the validator set (block 1 wrote epoch 0 from genesis)."""
    latest = latest_epoch(state)
    if latest is None:  # a state without genesis's validators: not a chain's state
        raise LookupError("the state holds no validator set (block 1 writes genesis's)")
    return latest


def _check_validator_action(ctx: ExecContext, action: dict[str, Any]) -> None:
    latest = _current_epoch(ctx.state)
    if latest.from_height > ctx.block.height:
        raise Rejection(
            "change-in-flight",
            f"epoch {latest.epoch} (proposal {latest.proposal}) takes effect at height "
            f"{latest.from_height}; one validator change at a time",
        )
    kind = action["type"]
    if kind == "add-validator":
        member = _member(ctx.state, action["member"])
        if member is None:
            raise Rejection("unknown-member", f"no member {action['member']}")
        if not is_active(member):
            raise Rejection("not-active", f"member {action['member']} is not active")
        _check_free_node_key(latest, action["node_key"])
        if len(latest.validators) >= MAX_VALIDATORS:
            raise Rejection("too-many-validators", f"at most {MAX_VALIDATORS} validators")
        return
    if latest.index_of(action["node_key"]) is None:
        raise Rejection(
            "unknown-validator", f"node key {action['node_key'][:16]}... is not a validator"
        )
    if kind == "remove-validator":
        if len(latest.validators) <= 1:
            raise Rejection("last-validator", "cannot remove the only validator")
    else:  # replace-validator-key
        _check_free_node_key(latest, action["new_node_key"])


def _check_free_node_key(epoch: EpochRecord, node_key: str) -> None:
    index = epoch.index_of(node_key)
    if index is not None:
        raise Rejection(
            "key-taken",
            f"node key {node_key[:16]}... is validator {epoch.validators[index].name}'s",
        )


def _change_validators(ctx: ExecContext, proposal_id: str, action: dict[str, Any]) -> EpochRecord:
    """Write the next epoch: the latest's list changed by ``action``, in force from the
    first height the epoch rule allows after this block."""
    latest = _current_epoch(ctx.state)
    validators = list(latest.validators)
    kind = action["type"]
    if kind == "add-validator":
        entry = ValidatorEntry(action["name"], action["member"], action["node_key"], action["p2p"])
        validators.append(entry)
    else:
        index = latest.index_of(action["node_key"])
        assert index is not None  # _check_action ran just before
        if kind == "remove-validator":
            del validators[index]
        else:
            old = validators[index]
            validators[index] = ValidatorEntry(
                old.name, old.member, action["new_node_key"], action["p2p"]
            )
    height = ctx.block.height
    record = EpochRecord(
        epoch=latest.epoch + 1,
        from_height=ctx.epoch_rule.first_height(height),
        validators=tuple(validators),
        proposal=proposal_id,
        committed_height=height,
    )
    put_epoch(ctx.state, record)
    return record


def _check_free_key(state: BlockState, key: str) -> None:
    owner = state.get(signer_key(key))
    if owner is not None:
        raise Rejection("key-taken", f"key {key[:16]}... already belongs to member {owner}")


def _set_keys(state: BlockState, member: dict[str, Any], add: list[str], remove: list[str]) -> None:
    for k in remove:
        state.delete(signer_key(k))
    keys = [k for k in member["keys"] if k not in remove] + list(add)
    member["keys"] = keys
    rotation = member.get("rotation")
    if rotation is not None and (
        rotation["old_key"] not in keys or rotation["new_key"] not in keys
    ):
        del member["rotation"]
    put_member(state, member)


def _execute(ctx: ExecContext, proposal: dict[str, Any]) -> dict[str, Any]:
    """Carry out the proposal's action; what the result data adds (a validator change:
    its epoch and the height it takes effect from)."""
    state = ctx.state
    action = proposal["action"]
    kind = action["type"]
    if kind in VALIDATOR_ACTIONS:
        record = _change_validators(ctx, proposal["id"], action)
        return {"epoch": record.epoch, "from_height": record.from_height}
    if kind == "add-member":
        put_member(
            state,
            {
                "id": action["id"],
                "name": action["name"],
                "roles": list(action["roles"]),
                "keys": list(action["keys"]),
                "status": "active",
                "since_height": ctx.block.height,
            },
        )
        return {}
    member = _member(state, action["id"])
    assert member is not None  # _check_action ran just before
    if kind == "suspend-member":
        put_member(state, {**member, "status": "suspended"})
    elif kind == "reactivate-member":
        put_member(state, {**member, "status": "active"})
    else:
        _set_keys(state, member, action["add"], action["remove"])
    return {}


# ------------------------------------------------------------------ proposals


def _tally(state: BlockState, proposal: dict[str, Any]) -> dict[str, int]:
    active = _active_ids(state)
    votes = proposal["votes"]
    approvals = sum(1 for m in active if m in votes and votes[m]["approve"])
    rejections = sum(1 for m in active if m in votes and not votes[m]["approve"])
    return {
        "active": len(active),
        "threshold": threshold(len(active)),
        "approvals": approvals,
        "rejections": rejections,
    }


def _close(ctx: ExecContext, proposal: dict[str, Any], status: str, reason: str = "") -> None:
    proposal["status"] = status
    proposal["closed_height"] = ctx.block.height
    proposal["closed_ms"] = ctx.block.time_ms
    if reason:
        proposal["reason"] = reason
    ctx.state.delete(open_key(proposal["id"]))


def _evaluate(ctx: ExecContext, proposal: dict[str, Any]) -> dict[str, Any]:
    """Count the votes of the active members; execute, defeat or keep open."""
    tally = _tally(ctx.state, proposal)
    done: dict[str, Any] = {}
    if tally["approvals"] >= tally["threshold"]:
        try:
            _check_action(ctx, proposal["action"])
        except Rejection as err:
            _close(ctx, proposal, "failed", f"{err.code}: {err.message}")
        else:
            done = _execute(ctx, proposal)
            _close(ctx, proposal, "executed")
    elif tally["active"] - tally["rejections"] < tally["threshold"]:
        _close(ctx, proposal, "defeated", "too many rejections to reach the threshold")
    ctx.state.put(proposal_key(proposal["id"]), proposal)
    return {"proposal": proposal["id"], "status": proposal["status"], **tally, **done}


def _sweep_expired(ctx: ExecContext) -> list[dict[str, Any]]:
    """Close expired open proposals; return the ones still open."""
    still_open = []
    for key, _ in list(ctx.state.iter_prefix(b"govopen/")):
        proposal = ctx.state.get(proposal_key(key[len(b"govopen/") :].decode()))
        if ctx.block.time_ms > proposal["expires_ms"]:
            _close(ctx, proposal, "expired", "deadline passed")
            ctx.state.put(proposal_key(proposal["id"]), proposal)
        else:
            still_open.append(proposal)
    return still_open


def _authorize_member(ctx: ExecContext) -> None:
    require_member(ctx.state, ctx.tx.signer)


def _apply_propose(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    proposer = require_member(ctx.state, ctx.tx.signer)
    now = ctx.block.time_ms
    if body["expires_ms"] <= now:
        raise Rejection("bad-expiry", f"expires_ms must be later than the block time {now}")
    if body["expires_ms"] > now + MAX_PROPOSAL_TTL_MS:
        raise Rejection("bad-expiry", "expires_ms must be at most 30 days after the block time")
    action = body["action"]
    _check_action(ctx, action)
    still_open = _sweep_expired(ctx)
    mine = sum(1 for p in still_open if p["proposer"] == proposer["id"])
    if mine >= MAX_OPEN_PER_PROPOSER:
        raise Rejection(
            "too-many-open", f"member has {mine} open proposals (at most {MAX_OPEN_PER_PROPOSER})"
        )
    for p in still_open:
        if p["action"] == action:
            raise Rejection("duplicate-proposal", f"proposal {p['id']} is open for the same action")
    proposal: dict[str, Any] = {
        "id": ctx.tx.hash,
        "action": action,
        "note": body.get("note", ""),
        "proposer": proposer["id"],
        "signer": ctx.tx.signer,
        "created_height": ctx.block.height,
        "created_ms": now,
        "expires_ms": body["expires_ms"],
        "status": "open",
        "votes": {proposer["id"]: {"approve": True, "height": ctx.block.height, "tx": ctx.tx.hash}},
    }
    ctx.state.put(open_key(proposal["id"]), proposer["id"])
    return _evaluate(ctx, proposal)


def _apply_vote(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    voter = require_member(ctx.state, ctx.tx.signer)
    proposal = ctx.state.get(proposal_key(body["proposal"]))
    if proposal is None:
        raise Rejection("unknown-proposal", f"no proposal {body['proposal']}")
    if proposal["status"] != "open":
        raise Rejection("proposal-closed", f"proposal is {proposal['status']}")
    if ctx.block.time_ms > proposal["expires_ms"]:
        raise Rejection("proposal-expired", f"deadline {proposal['expires_ms']} has passed")
    previous = proposal["votes"].get(voter["id"])
    if previous is not None and previous["approve"] == body["approve"]:
        raise Rejection("duplicate-vote", "member already cast this vote")
    proposal["votes"][voter["id"]] = {
        "approve": body["approve"],
        "height": ctx.block.height,
        "tx": ctx.tx.hash,
    }
    return {**_evaluate(ctx, proposal), "replaced": previous is not None}


# ------------------------------------------------------------------ self-service rotation


def _apply_rotate(ctx: ExecContext) -> dict[str, Any]:
    body = ctx.tx.body
    member = require_member(ctx.state, ctx.tx.signer)
    new_key = body["new_key"]
    if member.get("rotation") is not None:
        raise Rejection(
            "rotation-pending",
            "finish the pending rotation (member.finish_rotation signed by the new key) first",
        )
    _check_free_key(ctx.state, new_key)
    if len(member["keys"]) >= MAX_KEYS_PER_MEMBER:
        raise Rejection("too-many-keys", f"a member has at most {MAX_KEYS_PER_MEMBER} keys")
    message = rotation_proof_message(ctx.block.chain_id, member["id"], ctx.tx.signer, new_key)
    if not verify(bytes.fromhex(new_key), message, bytes.fromhex(body["proof"])):
        raise Rejection("bad-proof", "proof is not the new key's signature of the rotation")
    member["rotation"] = {
        "old_key": ctx.tx.signer,
        "new_key": new_key,
        "height": ctx.block.height,
        "tx": ctx.tx.hash,
    }
    _set_keys(ctx.state, member, [new_key], [])
    return {"member": member["id"], "new_key": new_key, "retiring": ctx.tx.signer}


def _apply_finish(ctx: ExecContext) -> dict[str, Any]:
    member = require_member(ctx.state, ctx.tx.signer)
    rotation = member.get("rotation")
    if rotation is None or rotation["new_key"] != ctx.tx.signer:
        raise Rejection("no-rotation", "no pending rotation to this key")
    old_key = rotation["old_key"]
    del member["rotation"]
    _set_keys(ctx.state, member, [], [old_key])
    return {"member": member["id"], "retired": old_key}


# ------------------------------------------------------------------ queries


def _view(state: BlockState, proposal: dict[str, Any]) -> dict[str, Any]:
    out = dict(proposal)
    if out["status"] == "open" and block_time(state) > out["expires_ms"]:
        out["status"] = "expired"
    out["tally"] = _tally(state, proposal)
    return out


def _q_members(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    status = query.get("status")
    if status is not None and status not in ("active", "suspended"):
        raise Rejection("malformed", "status must be active or suspended")
    members = [m for m in _members(state) if status is None or m.get("status") == status]
    return {"block_time_ms": block_time(state), "members": members}


def _q_member(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    return _member(state, pattern_param(path["member_id"], "member id", MEMBER_ID))


def _q_proposal(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any] | None:
    proposal = state.get(proposal_key(hex64_param(path["proposal_id"], "proposal id")))
    return None if proposal is None else _view(state, proposal)


def _q_proposals(
    state: BlockState, path: Mapping[str, str], query: Mapping[str, str]
) -> dict[str, Any]:
    status = query.get("status")
    if status is not None and status not in STATUSES:
        raise Rejection("malformed", f"status must be one of {', '.join(STATUSES)}")
    if status == "open":
        found = [
            state.get(proposal_key(k[len(b"govopen/") :].decode()))
            for k, _ in state.iter_prefix(b"govopen/")
        ]
    else:
        found = [p for _, p in state.iter_prefix(b"proposal/")]
    views = [_view(state, p) for p in found]
    views = [v for v in views if status is None or v["status"] == status]
    views.sort(key=lambda v: (-v["created_height"], v["id"]))
    return {"block_time_ms": block_time(state), "proposals": views[:MAX_LIST]}


# ------------------------------------------------------------------ domain

GOV_PROPOSE = TxType(
    name="gov.propose",
    schema=PROPOSE_SCHEMA,
    authorize=_authorize_member,
    apply=_apply_propose,
    summary="propose adding, suspending or reactivating a member, rotating its keys, "
    "or adding, removing or re-keying a validator",
)
GOV_VOTE = TxType(
    name="gov.vote",
    schema=VOTE_SCHEMA,
    authorize=_authorize_member,
    apply=_apply_vote,
    summary="approve or reject an open proposal (executes at 2/3 of active members)",
)
MEMBER_ROTATE_KEY = TxType(
    name="member.rotate_key",
    schema=ROTATE_SCHEMA,
    authorize=_authorize_member,
    apply=_apply_rotate,
    summary="add one new key to the signer's member; the signing key retires when it finishes",
)
MEMBER_FINISH_ROTATION = TxType(
    name="member.finish_rotation",
    schema=FINISH_SCHEMA,
    authorize=_authorize_member,
    apply=_apply_finish,
    summary="signed by the new key: retire the old key of the pending rotation",
)

DOMAIN = Domain(
    name="gov",
    tx_types=(GOV_PROPOSE, GOV_VOTE, MEMBER_ROTATE_KEY, MEMBER_FINISH_ROTATION),
    queries=(
        Query("/members", _q_members, "Members, their roles, keys and status", ("status",)),
        Query("/members/{member_id}", _q_member, "One member"),
        Query("/proposals", _q_proposals, "Governance proposals (newest first)", ("status",)),
        Query("/proposals/{proposal_id}", _q_proposal, "One proposal with its votes and tally"),
    ),
)
