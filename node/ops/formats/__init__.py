"""Standard formats in and out (``docs/formats.md``): pure functions between the
client API's JSON answers and FHIR R4 or ClinicalTrials.gov JSON.

* ``fhir_consent``: a FHIR ``Consent`` to a ``consent.grant`` body (import, refusing
  whatever cannot be mapped), and a stored consent back to a ``Consent``.
* ``fhir_audit``: a patient's accounting of disclosures to a ``Bundle`` of ``AuditEvent``.
* ``fhir_documents``: a record's history to a ``Bundle`` of ``DocumentReference``.
* ``ctgov``: a trial's state to the ClinicalTrials.gov API v2 study layout.

Nothing here touches the network, a clock or the chain: the CLI fetches the
answers and signs the transactions (``node/cli/clients/ehr.py``, ``trials.py``).
"""

from __future__ import annotations


class FormatError(ValueError):
    """A document that cannot be converted; ``path`` names the offending element
    (``provision.actor[0].role``), the message says why, for the operator."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message
