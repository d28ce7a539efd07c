"""State sync: snapshots of the app state at checkpoints, served to joining nodes in
verified chunks (docs/state-sync.md)."""
