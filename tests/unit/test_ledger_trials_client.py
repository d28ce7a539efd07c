"""``hygeia client trials`` for the ethics approval and the re-consent rule: the bodies
sent (``register --ethics-committee``, ``data --participant``, ``approve``) and the
query asked (``reconsent``), against the fake node of ``test_cli_client``."""

from __future__ import annotations

from typing import Any

from tests.unit.test_cli_client import API, FakeNode, run

NCT = "NCT01234567"


def sent(node: FakeNode) -> dict[str, Any]:
    body: dict[str, Any] = node.posted[-1]["body"]
    return body


def test_register_with_and_without_ethics_committee(node: FakeNode, key: str) -> None:
    args = ["trials", "register", "--api", API, "--key", key, "--trial-id", NCT,
            "--title", "T", "--protocol", "ab" * 32, "--sap", "cd" * 32,
            "--primary", "P1=" + "ef" * 32]  # fmt: skip
    assert run(*args).exit_code == 0
    assert "ethics_committee" not in sent(node)
    assert run(*args, "--ethics-committee", "ethics-1").exit_code == 0
    assert sent(node)["ethics_committee"] == "ethics-1"


def test_data_names_participants_only_when_given(node: FakeNode, key: str) -> None:
    args = ["trials", "data", "--api", API, "--key", key, "--trial-id", NCT,
            "--merkle-root", "ab" * 32, "--count", "3"]  # fmt: skip
    assert run(*args).exit_code == 0
    assert "participants" not in sent(node)
    assert run(*args, "--participant", "01" * 32, "--participant", "02" * 32).exit_code == 0
    assert sent(node)["participants"] == ["01" * 32, "02" * 32]
    result = run(*args, "--participant", "Jane")
    assert result.exit_code != 0 and "--participant" in result.output


def test_approve_sends_the_decision(node: FakeNode, key: str) -> None:
    args = ["trials", "approve", "--api", API, "--key", key, "--trial-id", NCT,
            "--protocol-version", "2"]  # fmt: skip
    assert run(*args).exit_code == 0
    assert node.posted[-1]["type"] == "trial.approve"
    assert sent(node) == {"trial_id": NCT, "protocol_version": 2, "decision": "approved"}
    assert run(*args, "--decision", "rejected").exit_code == 0
    assert sent(node)["decision"] == "rejected"
    assert run(*args, "--decision", "maybe").exit_code != 0


def test_reconsent_asks_the_query(node: FakeNode) -> None:
    node.routes[f"/v1/trials/{NCT}/reconsent"] = {"participants": []}
    result = run("trials", "reconsent", "--api", API, "--trial-id", NCT, "--limit", "5")
    assert result.exit_code == 0, result.output
    assert node.gets == [f"/v1/trials/{NCT}/reconsent?limit=5"]
