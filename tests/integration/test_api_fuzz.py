"""Schemathesis against a live node: the node's answers must match its own
``/openapi.json`` (issue 11).

A 1-validator testnet runs in this event loop with one committed transaction;
schemathesis runs as a subprocess (so the node keeps serving while it waits)
over the document the node serves, in all its phases: the examples and
coverage of every operation, random fuzzing, and stateful sequences that follow
the document's links (``POST /v1/txs`` -> the transaction's status and proof).
The client operations go to the client listener, the admin ones to the admin
listener with the bearer token. Checks: all of schemathesis's, among them no
5xx, no status the document does not list, no body off its schema, 405 with
``Allow`` for other methods, the token enforced; except
``positive_data_acceptance``: the document types the domain queries' path and
query parameters as strings, while each ledger domain checks its own formats
(an NCT number, a GTIN...), so schema-valid values are rightly refused with 400.

``make test`` runs it bounded (``FUZZ_SECONDS`` per listener, a fixed seed, so
a failure reproduces); ``make soak`` runs the ``soak`` variant: longer, more
examples, a random seed (printed: ``HYGEIA_FUZZ_SEED=<seed>`` replays it).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.api.openapi import openapi_document
from tests.integration.cluster import Cluster

FUZZ_SECONDS = 25
FUZZ_EXAMPLES = 25
SOAK_SECONDS = 300
SOAK_EXAMPLES = 500
DEFAULT_SEED = 1101

CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path / "cluster", 1)
    try:
        await c.start(0)
        tx = c.anchor_tx(member=0)
        await c.node(0).submit_tx(tx.wire)
        await c.wait_committed([tx.hash], [0])
        yield c
    finally:
        await c.close()


async def schemathesis(
    workdir: Path, base_url: str, *args: str, seconds: int, examples: int, seed: int
) -> tuple[int, str]:
    """Run ``schemathesis run`` on the node's document against ``base_url``."""
    doc = workdir / "openapi.json"
    doc.write_text(json.dumps(openapi_document()), encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        str(doc),
        "--url",
        base_url,
        *CHECKS,
        "--max-time",
        str(seconds),
        "--max-examples",
        str(examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        *args,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "SCHEMATHESIS_HOOKS": ""},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), seconds * 3 + 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")


async def fuzz(node: Cluster, workdir: Path, seconds: int, examples: int, seed: int) -> None:
    home = node.homes[0]
    client_tags = sorted({t for p in _ops() for t in p if t != "admin"})
    runs = {
        "client": (
            home.api_url,
            ["--include-tag-regex", "^(" + "|".join(client_tags) + ")$"],
        ),
        "admin": (
            home.admin_url,
            # no stateful phase: no admin operation links to another
            [
                *("--include-tag", "admin"),
                *("--header", f"Authorization: Bearer {home.token}"),
                *("--phases", "examples,coverage,fuzzing"),
            ],
        ),
    }
    failures = []
    for name, (url, args) in runs.items():
        where = workdir / name
        where.mkdir()
        rc, out = await schemathesis(
            where, url, *args, seconds=seconds, examples=examples, seed=seed
        )
        if rc != 0:
            failures.append(f"--- schemathesis on the {name} API (seed {seed}):\n{out[-20000:]}")
    assert node.nodes[0].failed is None
    assert not failures, "\n".join(failures)


def _ops() -> list[list[str]]:
    return [
        op.get("tags", []) for item in openapi_document()["paths"].values() for op in item.values()
    ]


async def test_node_answers_match_its_openapi_document(node: Cluster, tmp_path: Path) -> None:
    seed = int(os.environ.get("HYGEIA_FUZZ_SEED", DEFAULT_SEED))
    await fuzz(node, tmp_path, FUZZ_SECONDS, FUZZ_EXAMPLES, seed)


@pytest.mark.soak
async def test_soak_node_answers_match_its_openapi_document(node: Cluster, tmp_path: Path) -> None:
    seed = int(os.environ.get("HYGEIA_FUZZ_SEED") or secrets.randbits(32))
    print(f"schemathesis soak: HYGEIA_FUZZ_SEED={seed}")
    await fuzz(node, tmp_path, SOAK_SECONDS, SOAK_EXAMPLES, seed)
