"""Governance: members, roles, key rotation (gov.propose, gov.vote).

(Being built: see the issue. Exports ``DOMAIN``.)
"""

from __future__ import annotations

from node.ledger.domain import Domain

DOMAIN = Domain(name="gov", tx_types=())
