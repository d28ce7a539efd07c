"""The list of ledger domains this node runs (order does not matter)."""

from __future__ import annotations

from node.ledger.domain import Domain
from node.ledger.domains import claims, ehr, epoch_attest, governance, nodes, supply, trials
from node.ledger.domains.anchor import DOMAIN as ANCHOR

DOMAINS: tuple[Domain, ...] = (
    ANCHOR,
    governance.DOMAIN,
    ehr.DOMAIN,
    supply.DOMAIN,
    trials.DOMAIN,
    claims.DOMAIN,
    nodes.DOMAIN,
    epoch_attest.DOMAIN,
)
