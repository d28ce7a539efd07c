"""Consent-gated exchange of EHR documents between institutions' nodes.

The chain holds a document's salted commitment (``record.anchor``); the document
itself stays with its custodian's node, which serves it, sealed to the requesting
member's key, to a member the patient's consent covers. The foundation modules:

| module | its one job |
|---|---|
| ``canonical`` | RFC 8785 (JCS) bytes of a resource's JSON text and its commitment |
| ``sealing`` | sealing a fetch answer to a member's Ed25519 key, and opening it |
| ``payload`` | the sealed fetch answer's JSON, and checking it against the commitment |
| ``signed_request`` | signing and verifying the ``X-Hygeia-*`` request headers (time passed in) |
| ``store`` | the custodian's documents, encrypted at rest, erasable per record |
"""
