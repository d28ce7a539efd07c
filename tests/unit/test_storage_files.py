"""storage/files.py: a file replaced whole or not at all, and nothing left behind."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from storage.files import replace_atomically


def test_replaces_whole_with_mode(tmp_path: Path) -> None:
    """The new bytes replace the old file; ``mode`` holds whatever the umask; no temporary stays."""
    target = tmp_path / "genesis.json"
    target.write_bytes(b"old contents, longer than the new ones")
    replace_atomically(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["genesis.json"]


def test_failed_replace_leaves_the_target_and_no_temporary(tmp_path: Path) -> None:
    """When the rename fails (the target is a directory), the target is unchanged and the
    temporary file is removed."""
    target = tmp_path / "occupied"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        replace_atomically(target, b"data")
    assert (target / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["occupied"]
