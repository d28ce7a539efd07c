"""The ``hygeia`` command tree: the root group is ``node.cli.main``; one module per area."""
