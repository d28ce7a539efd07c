"""Clinical trials: registration, amendments, consent, data, results.

(Being built: see the issue. Exports ``DOMAIN``.)
"""

from __future__ import annotations

from node.ledger.domain import Domain

DOMAIN = Domain(name="trials", tx_types=())
