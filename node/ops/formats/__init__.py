"""Standard formats in and out (``docs/formats.md``): pure functions between the
client API's JSON answers and FHIR R4, GS1 EPCIS 2.0, X12 835 or ClinicalTrials.gov JSON.

* ``fhir_consent``: a FHIR ``Consent`` to a ``consent.grant`` body (import, refusing
  whatever cannot be mapped), and a stored consent back to a ``Consent``.
* ``fhir_audit``: a patient's accounting of disclosures to a ``Bundle`` of ``AuditEvent``.
* ``fhir_documents``: a record's history to a ``Bundle`` of ``DocumentReference``.
* ``ctgov``: a trial's state to the ClinicalTrials.gov API v2 study layout.
* ``epcis``: packs' custody histories to an EPCIS 2.0 JSON-LD ``EPCISDocument``, and
  commissioning and shipping events back to ``drug.commission``/``drug.ship`` bodies.
* ``fhir_eob``: a claim's adjudication to an ``ExplanationOfBenefit``, its payments
  to a ``PaymentReconciliation``; ``x12_835``: the same as an X12 835 remittance.

Nothing here touches the network, a clock or the chain: the CLI fetches the
answers and signs the transactions (``node/cli/clients/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class FormatError(ValueError):
    """A document that cannot be converted; ``path`` names the offending element
    (``provision.actor[0].role``), the message says why, for the operator."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


def json_object(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else a FormatError at ``where``."""
    if not isinstance(value, Mapping):
        raise FormatError(where, "must be a JSON object")
    return value


def json_list(value: Any, where: str) -> list[Any]:
    """``value`` if it is a non-empty JSON array, else a FormatError at ``where``."""
    if not isinstance(value, list) or not value:
        raise FormatError(where, "must be a non-empty JSON array")
    return value
