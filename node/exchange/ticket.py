"""The custodian's decision: may this member have this version of a record, now?

A requester first commits an ``access.log`` (under a consent) or an
``access.emergency`` (break-glass) transaction naming the record; that committed,
successful transaction is its **ticket**, named by its hash. The custodian's node
then decides on its own copy of the chain, at the latest block time in its state
(``node.ledger.state.block_time``, never a clock), whether to hand the document
over: ``check_ticket`` returns a ``TicketGrant`` or raises ``TicketRefused`` with
the first of these codes that applies, checked in this order:

| code | when |
|---|---|
| ``unknown-version`` | no ``record.anchor`` was committed with the hash ``version_id`` |
| ``erased`` | the record was erased (``record.erase``), whatever the ticket |
| ``no-ticket`` | no ticket given, or no transaction with that hash was committed |
| ``ticket-rejected`` | the ticket was committed, rejected (its result is not ``ok``) |
| ``ticket-mismatch`` | the ticket is no ``access.log``/``access.emergency``, or of another record |
| ``wrong-requester`` | the ticket was signed by a key of another member than the requester |
| ``consent-revoked`` | ``access.log``: the consent it relied on was revoked since |
| ``consent-expired`` | ``access.log``: block time is at or past the consent's ``period.end`` |
| ``emergency-expired`` | ``access.emergency``: block time is outside its window ``[start, end)`` |

A ticket is for a record, not a version: an access logged while version 2 was the
latest also opens version 1, or a version 3 anchored later, as long as the consent
(or the break-glass window) holds. ``unknown-version`` is the caller's 404; every
other code a 403. The function reads ``state`` only (``BlockState`` of the
committed state) and is deterministic: the same state gives the same answer on
every node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from node.core.hexstr import HEX64
from node.ledger.domains.ehr import access_event, consent_key, version_of
from node.ledger.executor import result_key
from node.ledger.state import BlockState, block_time

__all__ = [
    "REFUSAL_CODES",
    "TicketGrant",
    "TicketRefused",
    "check_ticket",
]

# every code TicketRefused carries, in the order they are checked
REFUSAL_CODES: Final = (
    "unknown-version",
    "erased",
    "no-ticket",
    "ticket-rejected",
    "ticket-mismatch",
    "wrong-requester",
    "consent-revoked",
    "consent-expired",
    "emergency-expired",
)


class TicketRefused(Exception):
    """The custodian must not hand the version over: ``code`` (one of
    ``REFUSAL_CODES``) is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TicketGrant:
    """What a valid ticket opens, at block time ``time``."""

    record_id: str
    version: int  # the version ``version_id`` names
    version_id: str
    requester_member: str
    kind: Literal["consent", "emergency"]
    patient: str  # the record's patient key (64 hex)
    ticket: str  # the access transaction's hash
    consent_id: str | None  # the consent relied on ("consent"), None for "emergency"
    valid_until: int  # block time (ms) from which the ticket no longer holds
    time: int  # the block time the decision was taken at


def check_ticket(
    state: BlockState, *, version_id: str, ticket: str | None, requester_member: str
) -> TicketGrant:
    """May ``requester_member`` have the version ``version_id`` under the access
    transaction ``ticket``, at the latest block time of ``state``? The grant, or
    ``TicketRefused`` with the first code of ``REFUSAL_CODES`` that applies."""
    version = version_of(state, version_id)
    if version is None:
        raise TicketRefused("unknown-version", "no record version has this id")
    record_id = str(version["record_id"])
    if version["erased"] is not None:
        raise TicketRefused(
            "erased", f"record {record_id} was erased at height {version['erased']['height']}"
        )
    result = _committed_result(state, ticket)
    if result is None:
        raise TicketRefused("no-ticket", "no committed access transaction is given as the ticket")
    assert ticket is not None
    if result.get("status") != "ok":
        raise TicketRefused("ticket-rejected", f"the ticket was rejected ({result.get('code')})")
    event = access_event(state, ticket)
    if event is None:
        raise TicketRefused("ticket-mismatch", "the ticket is not an access to a record")
    if event["record_id"] != record_id:
        raise TicketRefused("ticket-mismatch", "the ticket is an access to another record")
    if event["agent"] != requester_member:
        raise TicketRefused("wrong-requester", f"the ticket is not {requester_member}'s")
    now = block_time(state)
    if event["emergency"]:
        window = event["period"]
        if not window["start"] <= now < window["end"]:
            raise TicketRefused(
                "emergency-expired", f"the break-glass window ended at {window['end']}"
            )
        kind: Literal["consent", "emergency"] = "emergency"
        consent_id, until = None, int(window["end"])
    else:
        consent_id = str(event["consent_id"])
        consent: dict[str, Any] = state.get(consent_key(consent_id))
        if consent["revoked"] is not None:
            raise TicketRefused(
                "consent-revoked",
                f"the consent was revoked at height {consent['revoked']['height']}",
            )
        if now >= consent["period"]["end"]:
            raise TicketRefused(
                "consent-expired", f"the consent's period ended at {consent['period']['end']}"
            )
        kind, until = "consent", int(consent["period"]["end"])
    return TicketGrant(
        record_id=record_id,
        version=int(version["version"]),
        version_id=version_id,
        requester_member=requester_member,
        kind=kind,
        patient=str(version["patient"]),
        ticket=ticket,
        consent_id=consent_id,
        valid_until=until,
        time=now,
    )


def _committed_result(state: BlockState, ticket: str | None) -> dict[str, Any] | None:
    """The committed result of the transaction ``ticket`` names, or None."""
    if ticket is None or not HEX64.fullmatch(ticket):
        return None
    result: dict[str, Any] | None = state.get(result_key(ticket))
    return result
