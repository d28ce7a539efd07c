"""HTTP APIs of a node: the client API and the admin API (two listeners)."""
