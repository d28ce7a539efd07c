"""Clinical trials: re-consent after a safety amendment (``docs/clinical-trials.md``).

An amendment with ``reason_code`` ``safety`` that takes effect makes its protocol
version the trial's ``reconsent_from``: from then on a participant whose last
consent is to an older version is **outdated** until their site records a
consent to that version or a later one. A ``trial.data`` batch must then name the
participants whose case-report-form records it holds (``participants``), and is
refused if one of them is outdated. A withdrawn participant is never outdated:
withdrawal is final, they cannot re-consent, and data collected before the
withdrawal stays acceptable.

Pure functions over the trial and participant records (no state access), so the
rules read the same in the executor, the audit report and the query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from node.ledger.result import Rejection

SAFETY_REASON = "safety"  # the amendment reason_code that requires re-consent
MAX_DATA_PARTICIPANTS = 1000  # participants named by one trial.data batch


def reconsent_from(trial: Mapping[str, Any]) -> int | None:
    """The protocol version of the last safety amendment in force, or None."""
    found = trial.get("reconsent_from")
    return None if found is None else int(found)


def is_outdated(subject: Mapping[str, Any], required_from: int | None) -> bool:
    """Must this participant re-consent before more data of theirs is accepted?"""
    return (
        required_from is not None
        and subject.get("withdrawn") is None
        and int(subject["consented_version"]) < required_from
    )


def check_data_participants(
    trial: Mapping[str, Any],
    site: str,
    participants: list[str] | None,
    load: Callable[[str], Mapping[str, Any] | None],
) -> int:
    """Check the participants a ``trial.data`` batch names (``load`` reads a participant
    record by pseudonym); the number named. Rejections, in this order:
    ``participants-required`` (a safety amendment is in force and none are named),
    then for each participant in the body's order ``no-consent`` (unknown to the
    trial), ``wrong-site`` (another site's) and ``reconsent-required`` (outdated)."""
    required_from = reconsent_from(trial)
    if participants is None:
        if required_from is not None:
            raise Rejection(
                "participants-required",
                f"a safety amendment (version {required_from}) is in force: "
                "the batch must name its participants",
            )
        return 0
    for participant in participants:
        subject = load(participant)
        if subject is None:
            raise Rejection("no-consent", f"no consent is recorded for participant {participant}")
        if subject["site"] != site:
            raise Rejection(
                "wrong-site", f"participant {participant} belongs to site {subject['site']}"
            )
        if is_outdated(subject, required_from):
            raise Rejection(
                "reconsent-required",
                f"participant {participant} consented to version "
                f"{subject['consented_version']}; the safety amendment of version "
                f"{required_from} needs re-consent first",
            )
    return len(participants)


def outdated_entry(subject: Mapping[str, Any]) -> dict[str, Any]:
    """What the report and the query show of an outdated participant."""
    return {
        "participant": subject["participant"],
        "site": subject["site"],
        "status": subject["status"],
        "consented_version": subject["consented_version"],
    }


def outdated_participants(
    subjects: Iterable[Mapping[str, Any]], required_from: int | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """The first ``limit`` outdated participants of ``subjects`` (in their order), and
    whether more follow."""
    found: list[dict[str, Any]] = []
    if required_from is None:
        return found, False
    for subject in subjects:
        if not is_outdated(subject, required_from):
            continue
        if len(found) >= limit:
            return found, True
        found.append(outdated_entry(subject))
    return found, False
