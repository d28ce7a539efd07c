"""Functional test framework: real ``hygeia`` node processes on loopback.

In the style of Bitcoin Core's ``test/functional/test_framework``, one module
per concern:

* ``waiting``: ``wait_until``, the one way to wait for a condition (a deadline
  and a message naming what was awaited and the last state seen), never a
  fixed sleep: the helper every test layer shares (tests/support/waiting.py)
  with the functional tests' deadline; ``FrameworkError``;
* ``ports``: ``reserve_base_port``, the one way to get a testnet's free ports,
  held (tests/support/ports.py) by this process until released so that
  parallel runs never collide;
* ``node``: one node process (``NodeProcess``), its command line (``node_argv``,
  which ties the node's life to the test process on Linux) and environment,
  and ``configure_home``;
* ``network``: ``TestNetwork``, a testnet of real node processes as a context
  manager (set-up, start/stop/kill/restart, queries, waits, clean shutdown
  checked at the end); with ``proxied=True`` every peer link goes through a
  ``tests.chaos.proxy`` proxy and ``net.faults(...)`` partitions the network;
* ``httpclient``: JSON over HTTP to the nodes, and one-shot raw requests;
* ``load``: a background thread submitting pre-signed transactions;
* ``cli``: ``run_hygeia``, the one way to run the ``hygeia`` command, and
  ``cli_testnet``, a testnet run with ``hygeia testnet start`` as an operator
  would (the story tests).

Tests import what they use from the package (``__all__``).
"""

from tests.functional.framework.cli import cli_testnet, hygeia_json, run_hygeia
from tests.functional.framework.httpclient import fetch
from tests.functional.framework.network import TestNetwork
from tests.functional.framework.node import STOP_TIMEOUT, child_env, node_argv
from tests.functional.framework.ports import reserve_base_port
from tests.functional.framework.waiting import TIMEOUT, FrameworkError, WaitTimeout, wait_until
from tests.support.ports import HOST

__all__ = [
    "HOST",
    "STOP_TIMEOUT",
    "TIMEOUT",
    "FrameworkError",
    "TestNetwork",
    "WaitTimeout",
    "child_env",
    "cli_testnet",
    "fetch",
    "hygeia_json",
    "node_argv",
    "reserve_base_port",
    "run_hygeia",
    "wait_until",
]
