"""Insurance: policies, coverage, pre-authorisation, claims, settlement.

(Being built: see the issue. Exports ``DOMAIN``.)
"""

from __future__ import annotations

from node.ledger.domain import Domain

DOMAIN = Domain(name="claims", tx_types=())
