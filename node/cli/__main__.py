"""``python -m node.cli``: the ``hygeia`` command."""

from node.cli.main import main

main()
