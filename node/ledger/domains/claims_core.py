"""What every claims transaction shares: the formats of ids, codes and dates, the
state keys (docs/claims.md, "State keys"), the signer checks, the parse cache of
values never mutated, and the settlement ledger row of a provider-insurer pair.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.core.codec import parse_json
from node.ledger.context import ExecContext
from node.ledger.members import is_active, member_key, require_member, signer_key
from node.ledger.result import Rejection
from node.ledger.schema import Str, malformed
from node.ledger.state import BlockState

# ------------------------------------------------------------------ formats
ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")  # CPT/HCPCS/local-like codes
ICD = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")  # ICD-10-like
CURRENCY = re.compile(r"^[A-Z]{3}$")  # ISO 4217
DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
REASON = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._:-]{0,63}$")

PROVIDER_ROLES = ("hospital", "clinic", "pharmacy")
INSURER_ROLES = ("insurer",)
MAX_AMOUNT = 10**12  # minor units per unit
MAX_QUANTITY = 10_000
MAX_VERSIONS = 64
MAX_COVERAGES = 16
MAX_PAYMENTS = 64


@dataclass
class Date(Str):
    """A calendar date ``YYYY-MM-DD`` (ISO 8601, as FHIR ``date``)."""

    max_len: int = 10
    min_len: int = 10
    optional: bool = False

    def check(self, value: Any, path: str) -> None:
        super().check(value, path)
        if not DATE.fullmatch(value):
            raise malformed(path, "must be a date YYYY-MM-DD")
        try:
            datetime.date.fromisoformat(value)
        except ValueError:
            raise malformed(path, "is not a calendar date") from None


def block_date(time_ms: int) -> str:
    return datetime.datetime.fromtimestamp(time_ms // 1000, datetime.UTC).date().isoformat()


def block_year(time_ms: int) -> int:
    return datetime.datetime.fromtimestamp(time_ms // 1000, datetime.UTC).year


# ------------------------------------------------------------------ keys
def policy_key(policy_id: str) -> bytes:
    return b"claims/policy/" + policy_id.encode()


def policy_version_key(policy_id: str, version: int) -> bytes:
    return b"claims/policyv/" + policy_id.encode() + b"/" + b"%08d" % version


def coverage_key(insurer: str, patient: str) -> bytes:
    return b"claims/cov/" + insurer.encode() + b"/" + patient.encode()


def preauth_key(provider: str, preauth_id: str) -> bytes:
    return b"claims/preauth/" + provider.encode() + b"/" + preauth_id.encode()


def claim_key(provider: str, claim_id: str) -> bytes:
    return b"claims/claim/" + provider.encode() + b"/" + claim_id.encode()


def claim_state_key(provider: str, claim_id: str) -> bytes:
    return b"claims/claimst/" + provider.encode() + b"/" + claim_id.encode()


def insurer_index_key(insurer: str, provider: str, claim_id: str) -> bytes:
    return b"claims/byins/" + f"{insurer}/{provider}/{claim_id}".encode()


def duplicate_key(
    patient: str, provider: str, code: str, date: str, pack: tuple[str, str] | None = None
) -> bytes:
    """The duplicate-index key of a service: patient, provider, code and date; for a
    drug line, its pack instead of code and date (GTIN and the serial in hex: a serial
    may hold a ``/``): a serialised pack is dispensed once, so it is billed once,
    whatever date or code a later claim gives it."""
    if pack is not None:
        key = f"{patient}/{provider}/pack/{pack[0]}/{pack[1].encode().hex()}"
    else:
        key = f"{patient}/{provider}/{code}/{date}"
    return b"claims/dup/" + key.encode()


def line_duplicate_key(patient: str, provider: str, item: Mapping[str, Any]) -> bytes:
    """``duplicate_key`` of a claim line (a body item or an EOB line)."""
    pack = (item["gtin"], item["serial"]) if "gtin" in item else None
    return duplicate_key(patient, provider, item["service_code"], item["service_date"], pack)


def cob_key(insurer: str, dkey: bytes) -> bytes:
    """The key a coordination-of-benefits line takes at ``insurer`` for the service of
    ``dkey`` (``claims/cob/<insurer>/<patient>/<provider>/(<code>/<date> | pack/<pack>)``): one
    secondary (tertiary ...) claim per payer and service."""
    return b"claims/cob/" + insurer.encode() + b"/" + dkey[len(b"claims/dup/") :]


def accumulator_key(insurer: str, patient: str, policy_id: str, year: int) -> bytes:
    return b"claims/accum/" + f"{insurer}/{patient}/{policy_id}/{year}".encode()


def ledger_key(provider: str, insurer: str) -> bytes:
    return b"claims/ledger/" + provider.encode() + b"/" + insurer.encode()


def payment_key(insurer: str, payment_ref: str) -> bytes:
    return b"claims/pay/" + insurer.encode() + b"/" + payment_ref.encode()


# ------------------------------------------------------------------ helpers
def member_id(ctx: ExecContext) -> str:
    mid: str = get_frozen(ctx.state, signer_key(ctx.tx.signer))
    return mid


def is_active_insurer(state: BlockState, member_id: str) -> bool:
    return is_active(get_frozen(state, member_key(member_id)), *INSURER_ROLES)


def require_role(ctx: ExecContext, roles: tuple[str, ...]) -> None:
    """``members.require_member`` with the member record read through the parse cache
    (the hot path); a key of no member falls back to it for the same rejection."""
    member_id = get_frozen(ctx.state, signer_key(ctx.tx.signer))
    member = get_frozen(ctx.state, member_key(member_id)) if member_id is not None else None
    if not is_active(member, *roles):
        require_member(ctx.state, ctx.tx.signer, *roles)  # raises with its message
        raise Rejection("unauthorized", "signer is not a key of a member with the role")


def authorize_insurer(ctx: ExecContext) -> None:
    require_role(ctx, INSURER_ROLES)


def authorize_provider(ctx: ExecContext) -> None:
    require_role(ctx, PROVIDER_ROLES)


_FROZEN: dict[bytes, Any] = {}


def get_frozen(state: BlockState, key: bytes) -> Any:
    """``state.get`` for values the caller never mutates (policy versions), cached by
    their bytes: the same bytes always parse to the same value."""
    raw = state.get_raw(key)
    if raw is None:
        return None
    found = _FROZEN.get(raw)
    if found is None:
        if len(_FROZEN) >= 256:
            _FROZEN.clear()
        found = _FROZEN[raw] = parse_json(raw)
    return found


def ledger_add(
    state: BlockState, provider: str, insurer: str, approved: int, paid: int, claims: int = 0
) -> None:
    key = ledger_key(provider, insurer)
    row = state.get(key) or {
        "provider": provider,
        "insurer": insurer,
        "approved": 0,
        "paid": 0,
        "outstanding": 0,
        "claims": 0,
    }
    row["approved"] += approved
    row["paid"] += paid
    row["outstanding"] = row["approved"] - row["paid"]
    row["claims"] += claims
    # the totals grow without bound: one past 64 bits makes the codec refuse it
    # (CodecError), and the executor rejects this transaction instead of the row
    state.put(key, row)
