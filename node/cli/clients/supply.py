"""``hygeia client supply ...``: Drug supply chain: commission, ship, receive, dispense, verify.

Transactions print the submitted transaction's status and result as JSON and
exit 0 when the movement was accepted, 1 when the ledger rejected the
transaction, 3 when it was committed but the movement was refused by a
counterfeit rule (the result lists the alerts raised). Queries print JSON.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import echo as _echo_json

EXIT_REFUSED = 3


def _serials(serial: tuple[str, ...], serials_file: Path | None) -> list[str]:
    out = list(serial)
    if serials_file is not None:
        text = serials_file.read_text(encoding="utf-8")
        out.extend(line.strip() for line in text.splitlines() if line.strip())
    if not out:
        raise click.ClickException("give at least one --serial or a --serials-file")
    return out


def _submit(api: str, key_file: Path, tx_type: str, body: dict[str, Any], timeout: float) -> None:
    result = common.submit(api, key_file, tx_type, body, timeout)
    if ((result.get("result") or {}).get("data") or {}).get("outcome") == "refused":
        sys.exit(EXIT_REFUSED)


def _query(api: str, path: str, params: dict[str, str | None]) -> None:
    _echo_json(common.get(api, path, params))


_common = options.compose(
    click.option("--gtin", required=True, help="GTIN-14 (AI 01), check digit included."),
    options.commit_timeout(),
    options.key(),
    options.api(),
)
"""What every movement command takes (``--api``, ``--key``, ``--timeout``, ``--gtin``)."""


_with_serials = options.compose(
    click.option(
        "--serials-file", type=options.EXISTING_FILE, help="A file of serials, one a line."
    ),
    click.option("--serial", multiple=True, help="A serial (AI 21); repeat for more."),
)
"""``--serial`` (repeatable) and ``--serials-file``: the packs a movement is about."""


@click.group(name="supply")
def group() -> None:
    """Drug supply chain: commission, ship, receive, dispense, verify."""


@group.command()
@_common
@_with_serials
@click.option("--lot", required=True, help="Lot/batch (AI 10).")
@click.option("--expiry", required=True, help="Expiry YYMMDD (AI 17; DD 00 = end of month).")
def commission(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str,
    serial: tuple[str, ...],
    serials_file: Path | None,
    lot: str,
    expiry: str,
) -> None:
    """Commission serialised packs (drug.commission; a manufacturer)."""
    body = {"gtin": gtin, "lot": lot, "expiry": expiry, "serials": _serials(serial, serials_file)}
    _submit(api, key_file, "drug.commission", body, timeout)


@group.command()
@_common
@_with_serials
@click.option("--to", "to", required=True, help="The recipient member id.")
@click.option("--sscc", help="The container's SSCC (18 digits).")
def ship(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str,
    serial: tuple[str, ...],
    serials_file: Path | None,
    to: str,
    sscc: str | None,
) -> None:
    """Ship packs you hold to another member (drug.ship)."""
    body: dict[str, Any] = {"gtin": gtin, "serials": _serials(serial, serials_file), "to": to}
    if sscc:
        body["sscc"] = sscc
    _submit(api, key_file, "drug.ship", body, timeout)


@group.command()
@_common
@_with_serials
@click.option("--shipment", help="The ship transaction's hash, to match exactly.")
def receive(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str,
    serial: tuple[str, ...],
    serials_file: Path | None,
    shipment: str | None,
) -> None:
    """Receive packs shipped to you (drug.receive)."""
    body: dict[str, Any] = {"gtin": gtin, "serials": _serials(serial, serials_file)}
    if shipment:
        body["shipment"] = shipment
    _submit(api, key_file, "drug.receive", body, timeout)


@group.command()
@_common
@_with_serials
@click.option("--lot", help="The lot scanned from the pack (checked).")
@click.option("--expiry", help="The expiry scanned from the pack (checked).")
def dispense(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str,
    serial: tuple[str, ...],
    serials_file: Path | None,
    lot: str | None,
    expiry: str | None,
) -> None:
    """Dispense packs you hold (drug.dispense; a pharmacy or hospital)."""
    body: dict[str, Any] = {"gtin": gtin, "serials": _serials(serial, serials_file)}
    if lot:
        body["lot"] = lot
    if expiry:
        body["expiry"] = expiry
    _submit(api, key_file, "drug.dispense", body, timeout)


@group.command()
@_common
@_with_serials
@click.option(
    "--reason", required=True, type=click.Choice(["destroyed", "expired", "stolen", "sample"])
)
def decommission(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str,
    serial: tuple[str, ...],
    serials_file: Path | None,
    reason: str,
) -> None:
    """Decommission packs (drug.decommission)."""
    body = {"gtin": gtin, "serials": _serials(serial, serials_file), "reason": reason}
    _submit(api, key_file, "drug.decommission", body, timeout)


def _flag_command(name: str, tx_type: str, doc: str) -> None:
    @group.command(name=name, help=doc)
    @_common
    @_with_serials
    @click.option("--lot", help="A whole lot instead of serials.")
    @click.option("--reason", help="A short code (no personal data), e.g. sterility.")
    def cmd(
        api: str,
        key_file: Path,
        timeout: float,
        gtin: str,
        serial: tuple[str, ...],
        serials_file: Path | None,
        lot: str | None,
        reason: str | None,
    ) -> None:
        body: dict[str, Any] = {"gtin": gtin}
        if lot:
            if serial or serials_file:
                raise click.ClickException("give --lot or serials, not both")
            body["lot"] = lot
        else:
            body["serials"] = _serials(serial, serials_file)
        if reason:
            body["reason"] = reason
        _submit(api, key_file, tx_type, body, timeout)


_flag_command("recall", "drug.recall", "Recall a lot or serials (drug.recall).")
_flag_command("suspect", "drug.suspect", "Flag a lot or serials as suspect (drug.suspect).")
_flag_command("clear", "drug.clear", "Clear the suspect flag (drug.clear).")


@group.command()
@options.api()
@click.option("--gtin", required=True)
@click.option("--serial", required=True)
@click.option("--lot", required=True)
@click.option("--expiry", required=True, help="YYMMDD.")
def verify(api: str, gtin: str, serial: str, lot: str, expiry: str) -> None:
    """Verify a pack as scanned: verified, reason codes, custody history (open to anyone)."""
    _query(api, "/supply/verify", {"gtin": gtin, "serial": serial, "lot": lot, "expiry": expiry})


@group.command()
@options.api()
@click.option("--gtin", required=True)
@click.option("--serial", required=True)
def history(api: str, gtin: str, serial: str) -> None:
    """A pack's current facts and custody history."""
    _query(api, "/supply/packs", {"gtin": gtin, "serial": serial})


@group.command()
@options.api()
@click.option("--gtin", help="Only this GTIN's alerts.")
@click.option("--manufacturer", help="Only alerts on this manufacturer's products.")
@click.option("--after", help="The last alert id of the previous page.")
@click.option("--limit", type=int, help="At most this many (1..500).")
def alerts(
    api: str, gtin: str | None, manufacturer: str | None, after: str | None, limit: int | None
) -> None:
    """Counterfeit alerts, oldest first."""
    _query(
        api,
        "/supply/alerts",
        {
            "gtin": gtin,
            "manufacturer": manufacturer,
            "after": after,
            "limit": None if limit is None else str(limit),
        },
    )
