"""``hygeia client supply ...``: Drug supply chain: commission, ship, receive, dispense, verify.

Transactions print the submitted transaction's status and result as JSON and
exit 0 when the movement was accepted, 1 when the ledger rejected the
transaction, 3 when it was committed but the movement was refused by a
counterfeit rule (the result lists the alerts raised). Queries print JSON;
``verify`` exits 1 when the pack is not verified.

Packs are named by ``--gtin`` with ``--serial``/``--serials-file``, or by
``--scan``: the GS1 element string a scanner reads from the DataMatrix, read
with ``node.ledger.gs1.parse_element_string`` (docs/supply-chain.md).

``history --format epcis`` and ``export-epcis`` write custody histories as a GS1
EPCIS 2.0 JSON-LD document; ``import-epcis`` signs and submits the commissioning and
shipping events of one (``node.ops.formats.epcis``, docs/formats.md).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from node.cli import options
from node.cli.clients import common
from node.cli.clients.common import echo as _echo_json
from node.core.codec import CodecError, parse_json
from node.ledger.gs1 import Gs1Error, parse_element_string
from node.ops.formats import FormatError, epcis

EXIT_REFUSED = 3
EXIT_NOT_VERIFIED = 1
MAX_EPCIS_BYTES = 16 << 20  # an imported EPCIS document


def _scan(text: str) -> dict[str, str]:
    """The fields of one scanned element string; an unreadable one ends the command."""
    try:
        return parse_element_string(text)
    except Gs1Error as err:
        raise click.ClickException(f"--scan {text!r}: {err}") from None


def _one(values: list[str], what: str) -> str | None:
    """The value all scans agree on (None if none has it); scans that differ end the command."""
    distinct = sorted(set(values))
    if len(distinct) > 1:
        raise click.ClickException(f"the scans name more than one {what}: {', '.join(distinct)}")
    return distinct[0] if distinct else None


@dataclass(frozen=True)
class Packs:
    """The packs a movement is about: one GTIN, its serials, and (from scans) lot and expiry."""

    gtin: str
    serials: list[str]
    lot: str | None = None
    expiry: str | None = None


def _packs(
    gtin: str | None, serial: tuple[str, ...], serials_file: Path | None, scan: tuple[str, ...]
) -> Packs:
    serials = list(serial)
    if serials_file is not None:
        text = serials_file.read_text(encoding="utf-8")
        serials.extend(line.strip() for line in text.splitlines() if line.strip())
    scanned = [_scan(t) for t in scan]
    if any("serial" not in f for f in scanned):
        raise click.ClickException("a --scan has no serial (AI 21)")
    serials.extend(f["serial"] for f in scanned)
    if not serials:
        raise click.ClickException("give at least one --serial, --scan or a --serials-file")
    gtin = _one([f["gtin"] for f in scanned if "gtin" in f] + ([gtin] if gtin else []), "GTIN")
    if gtin is None:
        raise click.ClickException("give --gtin (or --scan the packs)")
    lot = _one([f["lot"] for f in scanned if "lot" in f], "lot")
    expiry = _one([f["expiry"] for f in scanned if "expiry" in f], "expiry")
    return Packs(gtin, serials, lot, expiry)


def _submit(api: str, key_file: Path, tx_type: str, body: dict[str, Any], timeout: float) -> None:
    result = common.submit(api, key_file, tx_type, body, timeout)
    if ((result.get("result") or {}).get("data") or {}).get("outcome") == "refused":
        sys.exit(EXIT_REFUSED)


def _query(api: str, path: str, params: dict[str, str | None]) -> None:
    _echo_json(common.get(api, path, params))


_common = options.compose(
    click.option("--gtin", help="GTIN-14 (AI 01), check digit included (or from --scan)."),
    options.commit_timeout(),
    options.key(),
    options.api(),
)
"""What every movement command takes (``--api``, ``--key``, ``--timeout``, ``--gtin``)."""


_with_serials = options.compose(
    click.option(
        "--scan",
        multiple=True,
        help="A pack's GS1 element string as scanned, (01)..(21).. or GS-separated; repeat.",
    ),
    click.option(
        "--serials-file", type=options.EXISTING_FILE, help="A file of serials, one a line."
    ),
    click.option("--serial", multiple=True, help="A serial (AI 21); repeat for more."),
)
"""``--serial`` (repeatable), ``--serials-file`` and ``--scan`` (repeatable): the packs
a movement is about."""


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
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
    lot: str,
    expiry: str,
) -> None:
    """Commission serialised packs (drug.commission; a manufacturer)."""
    packs = _packs(gtin, serial, serials_file, scan)
    body = {"gtin": packs.gtin, "lot": lot, "expiry": expiry, "serials": packs.serials}
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
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
    to: str,
    sscc: str | None,
) -> None:
    """Ship packs you hold to another member (drug.ship)."""
    packs = _packs(gtin, serial, serials_file, scan)
    body: dict[str, Any] = {"gtin": packs.gtin, "serials": packs.serials, "to": to}
    if sscc:
        body["sscc"] = sscc
    _submit(api, key_file, "drug.ship", body, timeout)


@group.command()
@_common
@_with_serials
@click.option(
    "--shipment", help="The ship transaction's hash: to match, or alone the whole shipment."
)
@click.option("--sscc", help="Alone: the whole shipment under this SSCC (18 digits).")
def receive(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
    shipment: str | None,
    sscc: str | None,
) -> None:
    """Receive packs shipped to you, or a whole shipment (drug.receive)."""
    body: dict[str, Any]
    if not (gtin or serial or serials_file or scan):
        if bool(shipment) == bool(sscc):
            raise click.ClickException("give serials, or --shipment or --sscc alone")
        body = {"shipment": shipment} if shipment else {"sscc": sscc}
        _submit(api, key_file, "drug.receive", body, timeout)
        return
    if sscc:
        raise click.ClickException("--sscc receives a whole shipment: give no serials")
    packs = _packs(gtin, serial, serials_file, scan)
    body = {"gtin": packs.gtin, "serials": packs.serials}
    if shipment:
        body["shipment"] = shipment
    _submit(api, key_file, "drug.receive", body, timeout)


@group.command()
@_common
@_with_serials
@click.option("--lot", help="The lot scanned from the pack (checked; default: from --scan).")
@click.option("--expiry", help="The expiry scanned from the pack (checked; default: from --scan).")
def dispense(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
    lot: str | None,
    expiry: str | None,
) -> None:
    """Dispense packs you hold (drug.dispense; a pharmacy or hospital)."""
    packs = _packs(gtin, serial, serials_file, scan)
    body: dict[str, Any] = {"gtin": packs.gtin, "serials": packs.serials}
    lot = lot or packs.lot
    expiry = expiry or packs.expiry
    if lot:
        body["lot"] = lot
    if expiry:
        body["expiry"] = expiry
    _submit(api, key_file, "drug.dispense", body, timeout)


@group.command()
@_common
@_with_serials
def undispense(
    api: str,
    key_file: Path,
    timeout: float,
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
) -> None:
    """Undo a dispense within 10 days, where it was dispensed (drug.undispense; EU FMD)."""
    packs = _packs(gtin, serial, serials_file, scan)
    body = {"gtin": packs.gtin, "serials": packs.serials}
    _submit(api, key_file, "drug.undispense", body, timeout)


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
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
    reason: str,
) -> None:
    """Decommission packs (drug.decommission)."""
    packs = _packs(gtin, serial, serials_file, scan)
    body = {"gtin": packs.gtin, "serials": packs.serials, "reason": reason}
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
        gtin: str | None,
        serial: tuple[str, ...],
        serials_file: Path | None,
        scan: tuple[str, ...],
        lot: str | None,
        reason: str | None,
    ) -> None:
        body: dict[str, Any]
        if lot:
            if serial or serials_file or scan:
                raise click.ClickException("give --lot or serials, not both")
            if not gtin:
                raise click.ClickException("give --gtin with --lot")
            body = {"gtin": gtin, "lot": lot}
        else:
            packs = _packs(gtin, serial, serials_file, scan)
            body = {"gtin": packs.gtin, "serials": packs.serials}
        if reason:
            body["reason"] = reason
        _submit(api, key_file, tx_type, body, timeout)


_flag_command("recall", "drug.recall", "Recall a lot or serials (drug.recall).")
_flag_command("suspect", "drug.suspect", "Flag a lot or serials as suspect (drug.suspect).")
_flag_command("clear", "drug.clear", "Clear the suspect flag (drug.clear).")


@group.command()
@options.api()
@click.option("--scan", help="The pack's GS1 element string as scanned (instead of the four).")
@click.option("--gtin")
@click.option("--serial")
@click.option("--lot")
@click.option("--expiry", help="YYMMDD.")
def verify(
    api: str,
    scan: str | None,
    gtin: str | None,
    serial: str | None,
    lot: str | None,
    expiry: str | None,
) -> None:
    """Verify a pack as scanned: verified, reason codes, custody history (open to anyone).

    Exits 1 when the pack is not verified.
    """
    fields = {"gtin": gtin, "serial": serial, "lot": lot, "expiry": expiry}
    params: dict[str, str | None]
    if scan is not None:
        if any(v is not None for v in fields.values()):
            raise click.ClickException("give --scan, or --gtin, --serial, --lot and --expiry")
        _scan(scan)  # an unreadable scan ends here, before the node is asked
        params = {"scan": scan}
    else:
        missing = [f"--{k}" for k, v in fields.items() if v is None]
        if missing:
            raise click.ClickException(f"give --scan, or {', '.join(missing)} too")
        params = dict(fields)
    answer = common.get(api, "/supply/verify", params)
    _echo_json(answer)
    if not answer.get("verified"):
        sys.exit(EXIT_NOT_VERIFIED)


def _epcis_export(api: str, gtin: str, serials: list[str]) -> None:
    """Print the EPCIS 2.0 document of the packs' custody histories (docs/formats.md)."""
    packs = [common.get(api, "/supply/packs", {"gtin": gtin, "serial": s}) for s in serials]
    try:
        _echo_json(epcis.packs_to_epcis(packs))
    except FormatError as exc:
        raise click.ClickException(f"cannot convert to EPCIS 2.0: {exc}") from None


@group.command()
@options.api()
@click.option("--gtin", required=True)
@click.option("--serial", required=True)
@click.option(
    "--format",
    "format_",
    type=click.Choice(["json", "epcis"]),
    default="json",
    show_default=True,
    help="The node's JSON, or a GS1 EPCIS 2.0 JSON-LD document (docs/formats.md).",
)
def history(api: str, gtin: str, serial: str, format_: str) -> None:
    """A pack's current facts and custody history (--format epcis: EPCIS 2.0 events)."""
    if format_ == "epcis":
        _epcis_export(api, gtin, [serial])
        return
    _query(api, "/supply/packs", {"gtin": gtin, "serial": serial})


@group.command(name="export-epcis")
@options.api()
@click.option("--gtin", help="GTIN-14 (AI 01), check digit included (or from --scan).")
@_with_serials
def export_epcis(
    api: str,
    gtin: str | None,
    serial: tuple[str, ...],
    serials_file: Path | None,
    scan: tuple[str, ...],
) -> None:
    """The custody histories of packs (a batch: its serials) as one GS1 EPCIS 2.0 document."""
    packs = _packs(gtin, serial, serials_file, scan)
    _epcis_export(api, packs.gtin, packs.serials)


@group.command(name="import-epcis")
@options.commit_timeout()
@options.key()
@options.api()
@click.option(
    "--epcis",
    "epcis_file",
    type=options.EXISTING_FILE,
    required=True,
    help="A GS1 EPCIS 2.0 JSON-LD EPCISDocument of commissioning and shipping events.",
)
@click.option("--dry-run", is_flag=True, help="Print the transaction bodies; submit nothing.")
def import_epcis(api: str, key_file: Path, timeout: float, epcis_file: Path, dry_run: bool) -> None:
    """Commission and ship what an EPCIS 2.0 document records (drug.commission, drug.ship),
    in its order, each after the previous one committed; refuses what cannot be mapped."""
    try:
        document = parse_json(epcis_file.read_bytes(), max_bytes=MAX_EPCIS_BYTES)
        txs = epcis.epcis_to_bodies(document)
    except (CodecError, FormatError) as exc:
        raise click.ClickException(f"{epcis_file}: cannot import: {exc}") from None
    if dry_run:
        _echo_json([{"type": tx_type, "body": body} for tx_type, body in txs])
        return
    for n, (tx_type, body) in enumerate(txs):
        result = common.submit(api, key_file, tx_type, body, timeout)
        if ((result.get("result") or {}).get("data") or {}).get("outcome") == "refused":
            sys.exit(EXIT_REFUSED)
        if result.get("status") != "committed" and n + 1 < len(txs):
            raise click.ClickException(
                f"{tx_type} not committed within --timeout: {len(txs) - n - 1} not submitted"
            )


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
