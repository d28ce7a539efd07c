"""``hygeia client trials ...``: clinical trial registration, consent, data, results.

Every transaction command takes ``--api`` (a node's client API) and ``--key``
(the member's signing key file), builds and signs the ``trial.*`` transaction
locally and submits it; ``--wait`` waits until it is committed. Documents
(protocol, statistical analysis plan) may be given as files: they are hashed
locally and only the SHA-256 leaves the machine. Outcomes are ``ID=HEX``, the
id and the 64-hex commitment of the outcome's description
(docs/clinical-trials.md says how to compute it). Nothing here takes personal
data: a participant is a 64-hex pseudonym commitment made by the site.
``show --format ctgov`` prints the ClinicalTrials.gov layout (``node.ops.formats.ctgov``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import echo as _echo
from node.cli.clients.common import fail as _fail
from node.cli.clients.common import get as _get
from node.core.codec import CodecError, parse_json
from node.core.hexstr import HEX64
from node.ledger.domains.trials import AMEND_REASONS, WITHDRAW_REASONS
from node.ledger.domains.trials_approval import DECISIONS
from node.ops.formats import FormatError
from node.ops.formats.ctgov import trial_to_ctgov

_tx_options = options.compose(
    options.tx_options(),
    click.option("--trial-id", required=True, help="NCT, EU CT, EudraCT or ISRCTN number."),
)
"""``options.tx_options`` and the trial's ``--trial-id``."""


def _hex(value: str, name: str) -> str:
    if not HEX64.fullmatch(value):
        _fail(f"{name} must be 64 lowercase hex characters")
    return value


def _commitment(
    hex_value: str | None, file_: Path | None, name: str, required: bool = True
) -> str | None:
    """A commitment given as hex, or the SHA-256 of a local file."""
    if hex_value is not None and file_ is not None:
        _fail(f"give --{name} or --{name}-file, not both")
    if file_ is not None:
        return common.sha256_file(file_)
    if hex_value is None:
        if required:
            _fail(f"give --{name} HEX or --{name}-file PATH")
        return None
    return _hex(hex_value, f"--{name}")


def _outcomes(items: tuple[str, ...], name: str) -> list[dict[str, str]]:
    out = []
    for item in items:
        oid, sep, commitment = item.partition("=")
        if not sep or not oid:
            _fail(f"--{name} takes ID=HEX, got {item!r}")
        out.append({"id": oid, "commitment": _hex(commitment, f"--{name} {oid}")})
    return out


@click.group(name="trials")
def group() -> None:
    """Clinical trials: registration, amendments, consent, data, results."""


@group.command(name="register")
@_tx_options
@click.option("--title", required=True, help="Brief title (short; must not hold PHI).")
@click.option("--protocol", help="Protocol commitment (64 hex).")
@click.option(
    "--protocol-file", type=options.EXISTING_FILE, help="Protocol document, hashed locally."
)
@click.option("--sap", help="Statistical analysis plan commitment (64 hex).")
@click.option(
    "--sap-file", type=options.EXISTING_FILE, help="Statistical analysis plan, hashed locally."
)
@click.option("--primary", multiple=True, required=True, help="Primary outcome ID=HEX (repeat).")
@click.option("--secondary", multiple=True, help="Secondary outcome ID=HEX (repeat).")
@click.option("--site", multiple=True, help="Member id of a site (hospital or clinic; repeat).")
@click.option(
    "--ethics-committee",
    help="Member id (role regulator) whose approval every amendment then needs.",
)
def register(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    title: str,
    protocol: str | None,
    protocol_file: Path | None,
    sap: str | None,
    sap_file: Path | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    site: tuple[str, ...],
    ethics_committee: str | None,
) -> None:
    """Register a trial (trial.register; signer: a sponsor member)."""
    body = {
        "trial_id": trial_id,
        "brief_title": title,
        "protocol_commitment": _commitment(protocol, protocol_file, "protocol"),
        "sap_commitment": _commitment(sap, sap_file, "sap"),
        "primary_outcomes": _outcomes(primary, "primary"),
        "secondary_outcomes": _outcomes(secondary, "secondary"),
        "sites": list(site),
    }
    if ethics_committee:
        body["ethics_committee"] = ethics_committee
    common.submit_tx(api, key_file, "trial.register", body, wait, timeout)


@group.command(name="amend")
@_tx_options
@click.option("--reason-code", required=True, type=click.Choice(AMEND_REASONS))
@click.option("--reason", required=True, help="Short reason (must not hold PHI).")
@click.option("--protocol", help="New protocol commitment (64 hex).")
@click.option(
    "--protocol-file", type=options.EXISTING_FILE, help="New protocol document, hashed locally."
)
@click.option("--sap", help="New statistical analysis plan commitment (64 hex).")
@click.option(
    "--sap-file", type=options.EXISTING_FILE, help="New statistical analysis plan, hashed locally."
)
@click.option("--primary", multiple=True, help="Replace the primary outcomes: ID=HEX (repeat).")
@click.option("--secondary", multiple=True, help="Replace the secondary outcomes: ID=HEX (repeat).")
@click.option("--no-secondary", is_flag=True, help="Remove every secondary outcome.")
@click.option("--site", multiple=True, help="Replace the sites: member id (repeat).")
@click.option("--protocol-version", type=int, help="The new version number (checked).")
def amend(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    reason_code: str,
    reason: str,
    protocol: str | None,
    protocol_file: Path | None,
    sap: str | None,
    sap_file: Path | None,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    no_secondary: bool,
    site: tuple[str, ...],
    protocol_version: int | None,
) -> None:
    """Amend a trial's protocol (trial.amend; signer: the trial's sponsor)."""
    body: dict[str, Any] = {
        "trial_id": trial_id,
        "reason_code": reason_code,
        "reason": reason,
        "protocol_commitment": _commitment(protocol, protocol_file, "protocol"),
    }
    sap_c = _commitment(sap, sap_file, "sap", required=False)
    if sap_c is not None:
        body["sap_commitment"] = sap_c
    if primary:
        body["primary_outcomes"] = _outcomes(primary, "primary")
    if secondary and no_secondary:
        _fail("give --secondary or --no-secondary, not both")
    if secondary or no_secondary:
        body["secondary_outcomes"] = _outcomes(secondary, "secondary")
    if site:
        body["sites"] = list(site)
    if protocol_version is not None:
        body["protocol_version"] = protocol_version
    common.submit_tx(api, key_file, "trial.amend", body, wait, timeout)


@group.command(name="consent")
@_tx_options
@click.option("--participant", required=True, help="Participant pseudonym commitment (64 hex).")
@click.option(
    "--protocol-version", type=int, help="Version consented to (default: the trial's current one)."
)
def consent(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    participant: str,
    protocol_version: int | None,
) -> None:
    """Record a participant's consent (trial.consent; signer: a site of the trial)."""
    if protocol_version is None:
        trial = _get(api, f"/trials/{trial_id}")
        protocol_version = int(trial["protocol_version"])
    body = {
        "trial_id": trial_id,
        "participant": _hex(participant, "--participant"),
        "protocol_version": protocol_version,
    }
    common.submit_tx(api, key_file, "trial.consent", body, wait, timeout)


@group.command(name="withdraw")
@_tx_options
@click.option("--participant", required=True, help="Participant pseudonym commitment (64 hex).")
@click.option("--reason-code", type=click.Choice(WITHDRAW_REASONS))
def withdraw(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    participant: str,
    reason_code: str | None,
) -> None:
    """Record a participant's withdrawal (trial.withdraw; signer: the participant's site)."""
    body = {"trial_id": trial_id, "participant": _hex(participant, "--participant")}
    if reason_code:
        body["reason_code"] = reason_code
    common.submit_tx(api, key_file, "trial.withdraw", body, wait, timeout)


@group.command(name="enroll")
@_tx_options
@click.option("--participant", required=True, help="Participant pseudonym commitment (64 hex).")
def enroll(
    api: str, key_file: Path, trial_id: str, wait: bool, timeout: float, participant: str
) -> None:
    """Enrol a participant consented to the current protocol (trial.enroll; signer: their site)."""
    body = {"trial_id": trial_id, "participant": _hex(participant, "--participant")}
    common.submit_tx(api, key_file, "trial.enroll", body, wait, timeout)


@group.command(name="data")
@_tx_options
@click.option("--merkle-root", required=True, help="Merkle root of the batch's CRF record hashes.")
@click.option("--count", "record_count", type=int, required=True, help="Records in the batch.")
@click.option(
    "--participant",
    multiple=True,
    help="Pseudonym of a participant whose records the batch holds (repeat; required "
    "once a safety amendment is in force).",
)
def data(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    merkle_root: str,
    record_count: int,
    participant: tuple[str, ...],
) -> None:
    """Commit a batch of case-report-form records (trial.data; signer: a site)."""
    body: dict[str, Any] = {
        "trial_id": trial_id,
        "merkle_root": _hex(merkle_root, "--merkle-root"),
        "record_count": record_count,
    }
    if participant:
        body["participants"] = [_hex(p, "--participant") for p in participant]
    common.submit_tx(api, key_file, "trial.data", body, wait, timeout)


@group.command(name="lock")
@_tx_options
@click.option("--commitment", required=True, help="Database-lock commitment (64 hex).")
def lock(
    api: str, key_file: Path, trial_id: str, wait: bool, timeout: float, commitment: str
) -> None:
    """Lock the trial database: no more data (trial.lock; signer: the sponsor)."""
    body = {"trial_id": trial_id, "lock_commitment": _hex(commitment, "--commitment")}
    common.submit_tx(api, key_file, "trial.lock", body, wait, timeout)


@group.command(name="results")
@_tx_options
@click.option("--primary", multiple=True, help="Reported primary outcome ID=HEX (repeat).")
@click.option("--secondary", multiple=True, help="Reported secondary outcome ID=HEX (repeat).")
@click.option("--results-commitment", required=True, help="Commitment of the results (64 hex).")
def results(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    primary: tuple[str, ...],
    secondary: tuple[str, ...],
    results_commitment: str,
) -> None:
    """Report results; outcomes are checked against the pre-specified ones (trial.results)."""
    body = {
        "trial_id": trial_id,
        "primary_outcomes": _outcomes(primary, "primary"),
        "secondary_outcomes": _outcomes(secondary, "secondary"),
        "results_commitment": _hex(results_commitment, "--results-commitment"),
    }
    common.submit_tx(api, key_file, "trial.results", body, wait, timeout)


@group.command(name="approve")
@_tx_options
@click.option(
    "--protocol-version", type=int, required=True, help="The pending amendment's version."
)
@click.option("--decision", type=click.Choice(DECISIONS), default="approved", show_default=True)
def approve(
    api: str,
    key_file: Path,
    trial_id: str,
    wait: bool,
    timeout: float,
    protocol_version: int,
    decision: str,
) -> None:
    """Decide on a pending amendment (trial.approve; signer: the trial's ethics committee)."""
    body = {"trial_id": trial_id, "protocol_version": protocol_version, "decision": decision}
    common.submit_tx(api, key_file, "trial.approve", body, wait, timeout)


@group.command(name="reconsent")
@options.api()
@click.option("--trial-id", required=True, help="The trial's id.")
@options.limit()
def reconsent(api: str, trial_id: str, limit: int) -> None:
    """Participants who must re-consent after a safety amendment."""
    _echo(_get(api, f"/trials/{trial_id}/reconsent", {"limit": str(limit)}))


@group.command(name="participant")
@options.api()
@click.option("--trial-id", required=True, help="The trial's id.")
@click.option("--participant", required=True, help="Participant pseudonym commitment (64 hex).")
@click.option(
    "--key",
    "key_file",
    type=options.EXISTING_FILE,
    required=True,
    help="Sign the request: the sponsor's, the ethics committee's or the participant's site's "
    "key file, or the participant's when the pseudonym is their key (docs/privacy.md).",
)
def participant(api: str, trial_id: str, participant: str, key_file: Path) -> None:
    """A participant's consent, enrolment and withdrawal in a trial (a signed read)."""
    path = f"/trials/{trial_id}/participants/{_hex(participant, '--participant')}"
    _echo(_get(api, path, key_file=key_file))


@group.command(name="report")
@options.api()
@click.option("--trial-id", required=True, help="The trial's id.")
@click.option("--data-limit", type=int, default=100, show_default=True, help="Data batches listed.")
def report(api: str, trial_id: str, data_limit: int) -> None:
    """A trial's audit report: timeline, amendments, counts, data commitments, flags."""
    _echo(_get(api, f"/trials/{trial_id}/report", {"data_limit": str(data_limit)}))


@group.command(name="show")
@options.api()
@click.option("--trial-id", required=True, help="The trial's id.")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "ctgov"]),
    default="json",
    show_default=True,
    help="The node's JSON, or the ClinicalTrials.gov API v2 study layout (docs/formats.md).",
)
@click.option(
    "--outcome-texts",
    type=options.EXISTING_FILE,
    help="With --format ctgov: the sponsor's outcome texts and salts (JSON), checked.",
)
def show(api: str, trial_id: str, format_: str, outcome_texts: Path | None) -> None:
    """A trial's registration and current state."""
    if outcome_texts is not None and format_ != "ctgov":
        _fail("--outcome-texts goes with --format ctgov")
    trial = _get(api, f"/trials/{trial_id}")
    if format_ == "ctgov":
        try:
            texts = parse_json(outcome_texts.read_bytes()) if outcome_texts else None
            if texts is not None and not isinstance(texts, dict):
                raise FormatError("outcome_texts", "must be a JSON object of outcome ids")
            trial = trial_to_ctgov(trial, texts)
        except (CodecError, FormatError) as exc:
            _fail(f"cannot export {trial_id}: {exc}")
    _echo(trial)


@group.command(name="list")
@options.api()
@click.option("--sponsor", help="Only this sponsor member's trials.")
def list_(api: str, sponsor: str | None) -> None:
    """Registered trials, all or by sponsor."""
    _echo(_get(api, "/trials", {"sponsor": sponsor or None}))
