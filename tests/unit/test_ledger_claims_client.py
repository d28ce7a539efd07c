"""``hygeia client claims`` for coordination of benefits, replacement and void: the
bodies sent (``submit --primary-claim``, ``submit --replaces``, ``void``), against the
fake node of ``test_cli_client``."""

from __future__ import annotations

from typing import Any

from tests.unit.test_cli_client import API, FakeNode, run

PATIENT = "ab" * 32


def sent(node: FakeNode) -> tuple[str, dict[str, Any]]:
    tx = node.posted[-1]
    return tx["type"], tx["body"]


def submit_args(key: str) -> list[str]:
    return ["claims", "submit", "--api", API, "--key", key, "--claim-id", "c-2",
            "--patient", PATIENT, "--insurer", "i2", "--diagnosis", "J20.9",
            "--item", "J1100:1:2000:2025-03-01:09506000134352:SN/1"]  # fmt: skip


def test_submit_names_the_primary_claim_and_the_replaced_claim_only_when_given(
    node: FakeNode, key: str
) -> None:
    assert run(*submit_args(key)).exit_code == 0
    tx_type, body = sent(node)
    assert tx_type == "claim.submit" and "primary_claim" not in body and "replaces" not in body
    assert body["items"][0]["serial"] == "SN/1"
    result = run(*submit_args(key), "--primary-claim", "c-1", "--replaces", "c-0")
    assert result.exit_code == 0, result.output
    _, body = sent(node)
    assert (body["primary_claim"], body["replaces"]) == ("c-1", "c-0")


def test_void_sends_the_claim_and_reason(node: FakeNode, key: str) -> None:
    result = run("claims", "void", "--api", API, "--key", key, "--provider", "h1",
                 "--claim-id", "c-1", "--reason", "billed in error")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sent(node) == (
        "claim.void",
        {"provider": "h1", "claim_id": "c-1", "reason": "billed in error"},
    )
    result = run("claims", "void", "--api", API, "--key", key, "--claim-id", "c-1",
                 "--reason", "x")  # fmt: skip
    assert result.exit_code != 0 and "--provider" in result.output
