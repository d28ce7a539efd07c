"""The ledger: the deterministic state machine every node runs on committed blocks."""
