"""What the FHIR R4 conversions share: the identifier systems (``docs/formats.md``),
HL7 code systems, block time (integer ms) to and from FHIR ``instant``/``dateTime``,
and small builders (an identifier reference, a coding, a ``Bundle``).

Times are integers throughout: a FHIR time is parsed into nanoseconds since the
Unix epoch with integer arithmetic, never through a float.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from node.ops.formats import FormatError

# ----------------------------------------------------------------- our identifier systems
# Logical URIs (RFC 3986 URNs) naming Hygeia's own identifiers in FHIR ``Identifier.system``
# and extension urls; documented in docs/formats.md.
SYSTEM_MEMBER = "urn:hygeia:member"  # a consortium member id (hospital-1, clinic-2, ...)
SYSTEM_PATIENT_KEY = "urn:hygeia:patient-key"  # a patient's pseudonymous Ed25519 key (64 hex)
SYSTEM_RECORD = "urn:hygeia:record"  # a record id (version-independent)
SYSTEM_VERSION = "urn:hygeia:record-version"  # a version id: its record.anchor tx hash
SYSTEM_COMMITMENT = "urn:hygeia:commitment"  # salted SHA-256 commitment, 64 lowercase hex
SYSTEM_CONSENT = "urn:hygeia:consent"  # a consent id: its consent.grant tx hash
SYSTEM_CHAIN = "urn:hygeia:chain"  # a chain id (the ledger that recorded an event)
EXT_ERASED = "urn:hygeia:extension:erased"  # valueCode: the record.erase reason
EXT_REVIEW = "urn:hygeia:extension:breakglass-review"  # valueCode: the access.review finding

# ----------------------------------------------------------------- HL7 code systems
V3_ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"  # PurposeOfUse
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
LOINC = "http://loinc.org"

_DATE = re.compile(
    r"^(?P<y>[0-9]{4})(?:-(?P<m>0[1-9]|1[0-2])(?:-(?P<d>0[1-9]|[12][0-9]|3[01]))?)?$"
)
_DATETIME = re.compile(
    r"^(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<h>[01][0-9]|2[0-3]):(?P<mi>[0-5][0-9])"
    r":(?P<s>[0-5][0-9])(?:\.(?P<f>[0-9]{1,9}))?(?P<tz>Z|[+-](?:0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$"
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


# ----------------------------------------------------------------- time
def instant(ms: int) -> str:
    """Block time (ms since the Unix epoch) as a FHIR ``instant``: UTC, milliseconds."""
    try:
        when = _EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise FormatError("", f"time {ms} ms is outside the years 1..9999") from exc
    if not 1 <= when.year <= 9999:
        raise FormatError("", f"time {ms} ms is outside the years 1..9999")
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def date(ms: int) -> str:
    """Block time as an ISO 8601 calendar date (UTC), ``YYYY-MM-DD``."""
    return instant(ms)[:10]


def _bounds_ns(value: str, where: str) -> tuple[int, int]:
    """(first nanosecond, one past the last nanosecond) a FHIR dateTime denotes: its
    precision decides the span (a day, a second, a millisecond ...). A date without a
    time is taken as UTC (documented); a time without a zone is not FHIR and refused."""
    if not isinstance(value, str):
        raise FormatError(where, "must be a FHIR dateTime string")
    m = _DATE.fullmatch(value)
    if m is not None:
        year, month, day = int(m["y"]), int(m["m"] or 1), int(m["d"] or 1)
        try:
            start = dt.datetime(year, month, day, tzinfo=dt.UTC)
        except ValueError as exc:
            raise FormatError(where, f"{value!r} is no calendar date") from exc
        if m["d"] is not None:
            end = start + dt.timedelta(days=1)
        elif m["m"] is not None:
            end = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)
        else:
            end = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
        return _ns(start), _ns(end)
    m = _DATETIME.fullmatch(value)
    if m is None:
        raise FormatError(
            where,
            f"{value!r} is not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD, or "
            "YYYY-MM-DDThh:mm:ss[.fff] with Z or an offset; leap second 60 not mapped)",
        )
    try:
        base = dt.datetime.fromisoformat(f"{m['date']}T{m['h']}:{m['mi']}:{m['s']}")
    except ValueError as exc:
        raise FormatError(where, f"{value!r} is no calendar date") from exc
    tz = m["tz"]
    offset = dt.timedelta(0)
    if tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    start_ns = _ns(base.replace(tzinfo=dt.timezone(offset)))
    frac = m["f"] or ""
    start_ns += int(frac.ljust(9, "0")) if frac else 0
    unit = 10 ** (9 - len(frac))  # a second without a fraction, else the fraction's last digit
    return start_ns, start_ns + unit


def _ns(when: dt.datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _NS_PER_S + delta.microseconds * 1000


def start_ms(value: Any, where: str) -> int:
    """The first block-time millisecond of a FHIR dateTime (rounded up: never earlier)."""
    first, _ = _bounds_ns(value, where)
    return -((-first) // _NS_PER_MS)


def end_ms(value: Any, where: str) -> int:
    """The exclusive block-time end (ms) of an inclusive FHIR ``Period.end``: one past the
    last instant its precision covers (rounded down: never later)."""
    _, past = _bounds_ns(value, where)
    return past // _NS_PER_MS


# ----------------------------------------------------------------- builders
def ident(system: str, value: str) -> dict[str, str]:
    return {"system": system, "value": value}


def ref(system: str, value: str) -> dict[str, Any]:
    """A logical ``Reference`` by identifier (no FHIR server holds these resources)."""
    return {"identifier": ident(system, value)}


def coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [coding(system, code)]}


def record_type_coding(type_: str) -> dict[str, str]:
    """A record's ``type``: a LOINC code (``11506-3``) or a FHIR resource type."""
    return coding(LOINC if type_[:1].isdigit() else RESOURCE_TYPES, type_)


def bundle(resources: Iterable[Mapping[str, Any]], type_: str = "collection") -> dict[str, Any]:
    """A FHIR ``Bundle`` of ``resources``, in order (``searchset`` also counts them)."""
    entries = [{"resource": dict(r)} for r in resources]
    out: dict[str, Any] = {"resourceType": "Bundle", "type": type_}
    if type_ == "searchset":
        out["total"] = len(entries)
    if entries:  # FHIR JSON has no empty arrays
        out["entry"] = entries
    return out
