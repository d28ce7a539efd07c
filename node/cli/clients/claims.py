"""``hygeia client claims ...``: insurance policies, coverage, claims, settlement.

Transactions are built and signed locally with ``--key`` and submitted to
``--api``; ``--wait`` polls until committed and prints the result (for
``submit``: the explanation of benefits). Queries print the node's JSON.
Amounts are integer minor units; dates are ``YYYY-MM-DD``. Nothing here may
carry personal health data: patients are pseudonymous key hex, codes are codes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import fail as _fail
from node.ops.formats import FormatError, fhir_eob, x12_835


def _query(api: str, path: str, params: dict[str, str | None] | None = None) -> None:
    common.echo(common.get(api, path, params))


@click.group(name="claims")
def group() -> None:
    """Insurance: policies, coverage, pre-authorisation, claims, settlement."""


@group.command(name="publish-policy")
@options.tx_options()
@click.option(
    "--file",
    "file_",
    type=options.EXISTING_FILE,
    required=True,
    help="The policy as JSON (policy.publish body; see docs/claims.md).",
)
def publish_policy(api: str, key_file: Path, wait: bool, timeout: float, file_: Path) -> None:
    """Publish a policy, or a new version of it (policy.publish; insurer)."""
    try:
        body = json.loads(file_.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"{file_}: {exc}")
    if not isinstance(body, dict):
        _fail(f"{file_}: must hold a JSON object")
    common.submit_tx(api, key_file, "policy.publish", body, wait, timeout)


@group.command(name="enroll")
@options.tx_options()
@click.option("--coverage-id", required=True)
@click.option("--patient", required=True, help="The patient's public key (64 hex).")
@click.option("--policy", "policy_id", required=True)
@click.option("--start", required=True, help="First covered day, YYYY-MM-DD.")
@click.option("--end", required=True, help="Last covered day, YYYY-MM-DD.")
def enroll(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    coverage_id: str,
    patient: str,
    policy_id: str,
    start: str,
    end: str,
) -> None:
    """Enroll a patient key in a policy for a period (coverage.enroll; insurer)."""
    body = {
        "coverage_id": coverage_id,
        "patient": patient,
        "policy_id": policy_id,
        "start": start,
        "end": end,
    }
    common.submit_tx(api, key_file, "coverage.enroll", body, wait, timeout)


@group.command(name="preauth-request")
@options.tx_options()
@click.option("--preauth-id", required=True)
@click.option("--patient", required=True, help="The patient's public key (64 hex).")
@click.option("--insurer", required=True, help="The insurer's member id.")
@click.option("--code", "codes", multiple=True, required=True, help="A service code (repeat).")
@click.option("--diagnosis", multiple=True, help="An ICD-10 code (repeat).")
def preauth_request(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    preauth_id: str,
    patient: str,
    insurer: str,
    codes: tuple[str, ...],
    diagnosis: tuple[str, ...],
) -> None:
    """Ask an insurer to pre-authorise services (preauth.request; provider)."""
    body: dict[str, Any] = {
        "preauth_id": preauth_id,
        "patient": patient,
        "insurer": insurer,
        "service_codes": list(codes),
    }
    if diagnosis:
        body["diagnosis"] = list(diagnosis)
    common.submit_tx(api, key_file, "preauth.request", body, wait, timeout)


@group.command(name="preauth-decide")
@options.tx_options()
@click.option("--provider", required=True, help="The requesting provider's member id.")
@click.option("--preauth-id", required=True)
@click.option("--decision", type=click.Choice(["approved", "denied"]), required=True)
@click.option("--expires", help="Last day an approval is valid, YYYY-MM-DD.")
@click.option("--reason", help="A short reason code (no personal data).")
def preauth_decide(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    provider: str,
    preauth_id: str,
    decision: str,
    expires: str | None,
    reason: str | None,
) -> None:
    """Approve or deny a pre-authorisation (preauth.decide; insurer)."""
    body: dict[str, Any] = {"provider": provider, "preauth_id": preauth_id, "decision": decision}
    if expires:
        body["expires"] = expires
    if reason:
        body["reason"] = reason
    common.submit_tx(api, key_file, "preauth.decide", body, wait, timeout)


def _parse_item(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) not in (4, 6):
        _fail(f"--item {spec!r}: give CODE:QTY:UNIT_PRICE:YYYY-MM-DD[:GTIN:SERIAL]")
    try:
        item: dict[str, Any] = {
            "service_code": parts[0],
            "quantity": int(parts[1]),
            "unit_price": int(parts[2]),
            "service_date": parts[3],
        }
    except ValueError:
        _fail(f"--item {spec!r}: quantity and unit price are integers (minor units)")
    if len(parts) == 6:
        item["gtin"], item["serial"] = parts[4], parts[5]
    return item


@group.command(name="submit")
@options.tx_options()
@click.option("--claim-id", required=True)
@click.option("--patient", required=True, help="The patient's public key (64 hex).")
@click.option("--insurer", required=True, help="The insurer's member id.")
@click.option(
    "--item",
    "items",
    multiple=True,
    required=True,
    help="CODE:QTY:UNIT_PRICE:YYYY-MM-DD[:GTIN:SERIAL] (repeat; price in minor units).",
)
@click.option("--diagnosis", multiple=True, required=True, help="An ICD-10 code (repeat).")
@click.option("--evidence", multiple=True, help="An anchored record id (repeat).")
@click.option("--preauth", help="The pre-authorisation id.")
@click.option(
    "--primary-claim",
    help="Coordination of benefits: your claim id at the prior payer, already adjudicated.",
)
@click.option(
    "--replaces",
    help="Replace your unpaid claim of this id (claim frequency 7): it is voided.",
)
def submit(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    claim_id: str,
    patient: str,
    insurer: str,
    items: tuple[str, ...],
    diagnosis: tuple[str, ...],
    evidence: tuple[str, ...],
    preauth: str | None,
    primary_claim: str | None,
    replaces: str | None,
) -> None:
    """Submit a claim; with --wait print its explanation of benefits (claim.submit).

    With --primary-claim it goes to a secondary payer, which pays at most what the
    cited claim left to the patient; with --replaces it replaces an unpaid claim."""
    body: dict[str, Any] = {
        "claim_id": claim_id,
        "patient": patient,
        "insurer": insurer,
        "items": [_parse_item(s) for s in items],
        "diagnosis": list(diagnosis),
    }
    if evidence:
        body["evidence"] = list(evidence)
    if preauth:
        body["preauth"] = preauth
    if primary_claim:
        body["primary_claim"] = primary_claim
    if replaces:
        body["replaces"] = replaces
    common.submit_tx(api, key_file, "claim.submit", body, wait, timeout)


@group.command(name="settle")
@options.tx_options()
@click.option("--provider", required=True, help="The claiming provider's member id.")
@click.option("--claim-id", required=True)
@click.option("--payment-ref", required=True, help="The payment's reference (trace number).")
@click.option("--amount", type=int, required=True, help="Minor units.")
def settle(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    provider: str,
    claim_id: str,
    payment_ref: str,
    amount: int,
) -> None:
    """Record a payment of an approved claim (claim.settle; insurer)."""
    body = {
        "provider": provider,
        "claim_id": claim_id,
        "payment_ref": payment_ref,
        "amount": amount,
    }
    common.submit_tx(api, key_file, "claim.settle", body, wait, timeout)


@group.command(name="reverse")
@options.tx_options()
@click.option("--provider", required=True, help="The claiming provider's member id.")
@click.option("--claim-id", required=True)
@click.option("--payment-ref", help="Reverse this settlement; without it, the whole claim.")
@click.option("--reason", required=True, help="A short reason code (no personal data).")
def reverse(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    provider: str,
    claim_id: str,
    payment_ref: str | None,
    reason: str,
) -> None:
    """Reverse a settlement or an unpaid claim (claim.reverse; insurer)."""
    body: dict[str, Any] = {"provider": provider, "claim_id": claim_id, "reason": reason}
    if payment_ref:
        body["payment_ref"] = payment_ref
    common.submit_tx(api, key_file, "claim.reverse", body, wait, timeout)


@group.command(name="void")
@options.tx_options()
@click.option("--provider", required=True, help="Your member id (the claim's provider).")
@click.option("--claim-id", required=True)
@click.option("--reason", required=True, help="A short reason code (no personal data).")
def void(
    api: str,
    key_file: Path,
    wait: bool,
    timeout: float,
    provider: str,
    claim_id: str,
    reason: str,
) -> None:
    """Void your own unpaid claim (claim.void, claim frequency 8; provider)."""
    body = {"provider": provider, "claim_id": claim_id, "reason": reason}
    common.submit_tx(api, key_file, "claim.void", body, wait, timeout)


_currency_option = click.option(
    "--currency",
    help="ISO 4217 code of the amounts; default: the policies that priced the claims.",
)


def _currency(api: str, claims: list[Any], given: str | None) -> str:
    """``--currency``, checked against the currency of every policy version that
    priced a line of ``claims`` (one currency only); without it, that currency."""
    found: set[str] = set()
    policies: dict[str, Any] = {}
    for claim in claims:
        for line in claim.get("items", []) if isinstance(claim, dict) else []:
            if not isinstance(line, dict) or not line.get("policy_id"):
                continue  # denied before any policy priced it
            pid = str(line["policy_id"])
            if pid not in policies:
                policies[pid] = common.get(api, f"/policies/{pid}")
            try:
                found.add(
                    str(policies[pid]["versions"][int(line["policy_version"]) - 1]["currency"])
                )
            except (KeyError, IndexError, TypeError, ValueError):
                _fail(f"policy {pid}: no version {line.get('policy_version')!r} with a currency")
    if len(found) > 1 or (given and found and given not in found):
        _fail(f"the claims are priced in {', '.join(sorted(found))}: one currency per export")
    if given:
        return given
    if not found:
        _fail("no line was priced by a policy: give --currency")
    return found.pop()


def _convert(convert: Any, *args: Any, **kwargs: Any) -> Any:
    """``convert(...)``; an answer it cannot convert ends the command with the reason."""
    try:
        return convert(*args, **kwargs)
    except FormatError as exc:
        _fail(f"cannot convert: {exc}")


@group.command(name="status")
@options.api(options.API_URL_HELP)
@click.option("--provider", required=True, help="The claiming provider's member id.")
@click.option("--claim-id", required=True)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "fhir"]),
    default="json",
    show_default=True,
    help="The node's JSON, or a FHIR R4 ExplanationOfBenefit (docs/formats.md).",
)
@_currency_option
def status(api: str, provider: str, claim_id: str, format_: str, currency: str | None) -> None:
    """A claim's status with its explanation of benefits (--format fhir: ExplanationOfBenefit)."""
    if format_ == "json":
        _query(api, f"/claims/{provider}/{claim_id}")
        return
    claim = common.get(api, f"/claims/{provider}/{claim_id}")
    eob = _convert(fhir_eob.explanation_of_benefit, claim, _currency(api, [claim], currency))
    click.echo(fhir_eob.dumps(eob))


@group.command(name="remittance")
@options.api(options.API_URL_HELP)
@click.option("--provider", required=True, help="The claiming provider's member id.")
@click.option("--claim-id", "claim_ids", multiple=True, required=True, help="A claim id (repeat).")
@click.option(
    "--format",
    "format_",
    type=click.Choice(["x12", "fhir"]),
    default="x12",
    show_default=True,
    help="An X12 835 or a FHIR R4 PaymentReconciliation (docs/formats.md).",
)
@click.option("--trace", help="The trace number; default: the claims' only payment_ref.")
@click.option(
    "--control-number",
    type=click.IntRange(1, 999_999_999),
    default=1,
    show_default=True,
    help="The 835's interchange and group control number.",
)
@_currency_option
def remittance(
    api: str,
    provider: str,
    claim_ids: tuple[str, ...],
    format_: str,
    trace: str | None,
    control_number: int,
    currency: str | None,
) -> None:
    """The settlement of claims of one provider at one insurer as it stands at the
    latest block: an X12 835 remittance advice or a PaymentReconciliation."""
    claims = [common.get(api, f"/claims/{provider}/{c}") for c in claim_ids]
    if trace is None:
        refs = [
            p.get("payment_ref")
            for c in claims
            for p in (c.get("payments") or [] if isinstance(c, dict) else [])
            if isinstance(p, dict) and p.get("status") == "paid"
        ]
        if len(refs) != 1:
            _fail(f"the claims have {len(refs)} payments: give --trace")
        trace = str(refs[0])
    time_ms = common.get(api, "/members").get("block_time_ms")
    if not isinstance(time_ms, int) or time_ms <= 0:
        _fail("the node names no block time")
    args = {"currency": _currency(api, claims, currency), "time_ms": time_ms, "trace": trace}
    if format_ == "x12":
        click.echo(
            _convert(x12_835.remittance_835, claims, control=control_number, **args), nl=False
        )
    else:
        click.echo(fhir_eob.dumps(_convert(fhir_eob.payment_reconciliation, claims, **args)))


@group.command(name="statement")
@options.api(options.API_URL_HELP)
@click.option("--provider", help="A provider's member id.")
@click.option("--insurer", help="An insurer's member id.")
@options.limit("Claims listed.")
def statement(api: str, provider: str | None, insurer: str | None, limit: int) -> None:
    """Settlement statement (approved, paid, outstanding) of a provider or an insurer."""
    if (provider is None) == (insurer is None):
        _fail("give exactly one of --provider or --insurer")
    who = f"providers/{provider}" if provider is not None else f"insurers/{insurer}"
    _query(api, f"/claims-statements/{who}", {"limit": str(limit)})


@group.command(name="policy")
@options.api(options.API_URL_HELP)
@click.option("--policy", "policy_id", required=True)
def policy(api: str, policy_id: str) -> None:
    """A policy and all its versions."""
    _query(api, f"/policies/{policy_id}")


@group.command(name="coverage")
@options.api(options.API_URL_HELP)
@click.option("--insurer", required=True, help="The insurer's member id.")
@click.option("--patient", required=True, help="The patient's public key (64 hex).")
@click.option(
    "--key",
    "key_file",
    type=options.EXISTING_FILE,
    required=True,
    help="Sign the request: the patient's key file or the insurer's (docs/privacy.md).",
)
def coverage(api: str, insurer: str, patient: str, key_file: Path) -> None:
    """A patient key's coverages at an insurer (read by the patient or the insurer only)."""
    path = f"/coverage/{quote(insurer, safe='')}/{quote(patient, safe='')}"
    common.echo(common.get(api, path, key_file=key_file))
