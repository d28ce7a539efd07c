"""Drug supply chain: commission, ship, receive, dispense, verify.

(Being built: see the issue. Exports ``DOMAIN``.)
"""

from __future__ import annotations

from node.ledger.domain import Domain

DOMAIN = Domain(name="supply", tx_types=())
