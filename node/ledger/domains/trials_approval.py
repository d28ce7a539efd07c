"""Clinical trials: ethics approval of amendments (``docs/clinical-trials.md``).

A trial registered with an ``ethics_committee`` (an active member with role
``regulator``: the ledger's role for ethics committees and competent
authorities) has every amendment **pending** until that member decides on it
with ``trial.approve``. While an amendment is pending the previous protocol
version stays in force (consent, enrolment, pre-specified outcomes, re-consent)
and the sponsor cannot submit another one. An approval makes the amendment take
effect at the approval's transaction (the version entry's height, index, time
and tx are the approval's; ``submitted`` is the amendment's); a rejection
discards it, and the next amendment gets the same version number.

Pure helpers over the trial record; the transactions are in ``trials.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ledger.members import is_active
from node.ledger.result import Rejection

COMMITTEE_ROLES = ("regulator",)
APPROVED = "approved"
REJECTED = "rejected"
DECISIONS = (APPROVED, REJECTED)
MAX_REJECTED = 256  # rejected amendments kept per trial

_EVENT_FIELDS = ("height", "index", "time", "tx")


def check_committee(member: Mapping[str, Any] | None, member_id: str) -> str:
    """``member_id`` if ``member`` (its record) is an active regulator; otherwise
    ``unknown-committee``."""
    if not is_active(member, *COMMITTEE_ROLES):
        raise Rejection(
            "unknown-committee",
            f"ethics committee {member_id} is not an active member with role regulator",
        )
    return member_id


def rejected_count(trial: Mapping[str, Any]) -> int:
    return sum(1 for d in trial.get("amendment_decisions", []) if d["decision"] == REJECTED)


def decision_record(
    pending: Mapping[str, Any], decision: str, committee: str, event: Mapping[str, Any]
) -> dict[str, Any]:
    """The record of a committee's decision on a pending amendment."""
    return {
        "protocol_version": pending["protocol_version"],
        "reason_code": pending["reason_code"],
        "decision": decision,
        "committee": committee,
        "submitted": pending["submitted"],
        "decided": {k: event[k] for k in _EVENT_FIELDS},
    }


def timeline_events(trial: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The audit timeline's approval events (unsorted): ``amendment-submitted`` for every
    amendment that awaited (or awaits) a decision, ``amendment-rejected`` for each
    rejection. An approved amendment is the version history's ``amended`` event."""
    events: list[dict[str, Any]] = []
    for d in trial.get("amendment_decisions", []):
        head = {"protocol_version": d["protocol_version"], "reason_code": d["reason_code"]}
        events.append({"event": "amendment-submitted", **head, **d["submitted"]})
        if d["decision"] == REJECTED:
            events.append(
                {"event": "amendment-rejected", **head, "committee": d["committee"], **d["decided"]}
            )
    pending = trial.get("pending_amendment")
    if pending is not None:
        events.append(
            {
                "event": "amendment-submitted",
                "protocol_version": pending["protocol_version"],
                "reason_code": pending["reason_code"],
                **pending["submitted"],
            }
        )
    return events
