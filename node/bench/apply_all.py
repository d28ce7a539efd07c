"""Ledger apply throughput of every domain's transaction types, on one core.

``python -m node.bench.apply_all [--txs N]`` runs ``node/bench/apply_*.py`` one
after the other and prints one JSON object: per domain, per type, tx/s of
execution alone (and per CPU second, which stays meaningful on a busy machine).
"""

from __future__ import annotations

from typing import Any

from node.bench import apply_claims, apply_ehr, apply_supply, apply_trials
from node.bench.apply_common import run_main


def run(txs: int = 5000) -> dict[str, Any]:
    return {
        "ehr": apply_ehr.run(txs),
        "supply": apply_supply.run(txs),
        "trials": apply_trials.run(txs),
        "claims": apply_claims.run(txs),
    }


def main() -> None:
    run_main(__doc__, run)


if __name__ == "__main__":
    main()
