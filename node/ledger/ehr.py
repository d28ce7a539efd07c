"""Health records: patients, record anchors, consent, audited access.

(Being built: see the issue. Exports ``DOMAIN``.)
"""

from __future__ import annotations

from node.ledger.domain import Domain

DOMAIN = Domain(name="ehr", tx_types=())
