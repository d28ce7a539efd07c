"""A record's anchors (``GET /v1/ehr/records/{id}/history``) as FHIR R4 ``DocumentReference``.

One ``DocumentReference`` per version, oldest first, in a ``Bundle``:

* ``id`` and ``masterIdentifier`` (``urn:hygeia:record-version``) = the version id
  (the anchoring transaction's hash);
* ``identifier`` = the record id (``urn:hygeia:record``, version-independent) and
  the salted SHA-256 commitment (``urn:hygeia:commitment``, 64 hex). FHIR's
  ``attachment.hash`` is the base64 SHA-1 of the attachment's bytes, which the
  commitment is not, so it is never put there;
* ``status`` = ``current`` for the latest version, ``superseded`` before it
  (``entered-in-error`` for every version of a record erased for that reason; any
  erasure also in the ``urn:hygeia:extension:erased`` extension, its reason);
* ``type`` = the record type (LOINC code or FHIR resource type);
* ``subject`` = the patient's pseudonymous key, ``custodian`` = the member;
* ``date`` = block time of the anchor; ``relatesTo`` = ``replaces`` the previous
  version's ``DocumentReference`` (by its ``masterIdentifier``);
* ``content.attachment`` = the content type (FHIR JSON for a resource type) and a
  title of ids; the document itself stays with the custodian.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from node.ops.formats.fhir_common import (
    EXT_ERASED,
    SYSTEM_COMMITMENT,
    SYSTEM_MEMBER,
    SYSTEM_PATIENT_KEY,
    SYSTEM_RECORD,
    SYSTEM_VERSION,
    bundle,
    ident,
    instant,
    record_type_coding,
    ref,
)

FHIR_JSON = "application/fhir+json"


def document_reference(
    entry: Mapping[str, Any], latest: int, erased: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``DocumentReference`` of one version (an item of the history answer's
    ``versions``); ``latest`` is the record's latest version number."""
    type_ = record_type_coding(entry["type"])
    status = "current" if entry["version"] >= latest else "superseded"
    out: dict[str, Any] = {"resourceType": "DocumentReference", "id": entry["version_id"]}
    if erased:
        out["extension"] = [{"url": EXT_ERASED, "valueCode": erased["reason"]}]
        if erased["reason"] == "entered-in-error":
            status = "entered-in-error"
    attachment: dict[str, Any] = {"title": f"{entry['record_id']} version {entry['version']}"}
    if type_["system"] != "http://loinc.org":
        attachment = {"contentType": FHIR_JSON, **attachment}
    out |= {
        "masterIdentifier": ident(SYSTEM_VERSION, entry["version_id"]),
        "identifier": [
            ident(SYSTEM_RECORD, entry["record_id"]),
            ident(SYSTEM_COMMITMENT, entry["commitment"]),
        ],
        "status": status,
        "type": {"coding": [type_]},
        "subject": ref(SYSTEM_PATIENT_KEY, entry["patient"]),
        "date": instant(entry["time"]),
        "custodian": ref(SYSTEM_MEMBER, entry["custodian"]),
    }
    if entry.get("replaces"):
        out["relatesTo"] = [{"code": "replaces", "target": ref(SYSTEM_VERSION, entry["replaces"])}]
    out["content"] = [{"attachment": attachment}]
    return out


def history_to_bundle(
    answer: Mapping[str, Any], latest: int | None = None, type_: str = "collection"
) -> dict[str, Any]:
    """A ``Bundle`` of the history answer's versions. ``latest`` (the record's latest
    version, from ``GET /v1/ehr/records/{id}``) defaults to the highest version in
    the answer, which is right unless the answer is a page that stops short of it."""
    versions = answer["versions"]
    top = latest if latest is not None else max((v["version"] for v in versions), default=0)
    erased = answer.get("erased")
    return bundle((document_reference(v, top, erased) for v in versions), type_)
