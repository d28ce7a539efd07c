"""The dashboard's static files (``node/api/ui``): self-contained, shipped, and escaping.

A hospital node may have no internet, so the page must load nothing from
elsewhere; every file of the directory must be package data (a non-editable
install serves it too); and node data must reach the page only as text.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

from node.api.admin import UI_FILES, UI_HEADERS, UI_PATHS, ui_asset

ROOT = Path(__file__).resolve().parents[2]
UI_DIR = ROOT / "node" / "api" / "ui"

# a scheme-relative or absolute URL in an attribute, CSS or JS string
EXTERNAL = re.compile(r"""(?i)(?:https?:|ftp:|wss?:|["'(=\s]//[^/\s])""")
REFERENCES = re.compile(r"""(?i)\b(?:src|href|action)\s*=\s*["']([^"']*)["']""")


def _texts() -> dict[str, str]:
    return {name: ui_asset(name).decode("utf-8") for name, _ in UI_FILES.values()}


def test_every_served_file_exists_and_every_file_is_served() -> None:
    served = {name for name, _ in UI_FILES.values()}
    on_disk = {p.name for p in UI_DIR.iterdir() if p.is_file()}
    assert served == on_disk, f"node/api/ui has {sorted(on_disk)}, admin serves {sorted(served)}"
    for name, text in _texts().items():
        assert text.strip(), f"node/api/ui/{name} is empty"
    assert {"/ui", "/ui/app.js", "/ui/style.css"} <= UI_PATHS


def test_no_reference_outside_the_node() -> None:
    """No http(s)/ws/ftp URL, no //host reference, no CSS @import or url() at all."""
    for name, text in _texts().items():
        for lineno, line in enumerate(text.splitlines(), 1):
            assert not EXTERNAL.search(line), f"node/api/ui/{name}:{lineno}: external URL: {line!r}"
            assert "@import" not in line and "url(" not in line, f"{name}:{lineno}: {line!r}"


def test_page_references_only_its_own_assets() -> None:
    html = ui_asset("index.html").decode("utf-8")
    refs = REFERENCES.findall(html)
    assert refs, "index.html references no asset"
    for ref in refs:
        assert "/" + ref in UI_FILES, f"index.html references {ref!r}, not a served /ui file"
    csp = UI_HEADERS["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe" not in csp, csp  # no inline script or eval: the CSP would block them


def test_script_puts_node_data_into_the_page_only_as_text() -> None:
    js = ui_asset("app.js").decode("utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, f"node/api/ui/app.js uses {sink}: use textContent"
    html = ui_asset("index.html").decode("utf-8")
    assert "<script>" not in html, "index.html has an inline script (the CSP blocks it)"
    handler = re.search(r"\son[a-z]+\s*=", html)
    assert handler is None, f"index.html has an inline event handler: {handler.group()!r}"


def test_ids_the_functional_test_reads_exist() -> None:
    html = ui_asset("index.html").decode("utf-8")
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    wanted = {
        "height",
        "epoch",
        "role",
        "view",
        "primary",
        "syncing",
        "mempool",
        "peers-count",
        "health",
        "health-reasons",
        "peers-body",
        "cons-view",
        "last-view-change",
        "inflight-body",
        "blocks-body",
        "chart",
        "rate-tx",
        "rate-blocks",
        "auth",
        "auth-message",
        "token-form",
        "token-input",
        "dashboard",
        "error",
        "node-name",
    }
    assert wanted <= ids, f"index.html lacks ids {sorted(wanted - ids)}"


def test_every_ui_file_is_package_data() -> None:
    """pyproject's [tool.setuptools.package-data] covers each file of node/api/ui."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = meta["tool"]["setuptools"]["package-data"]["node.api"]
    for path in UI_DIR.iterdir():
        rel = f"ui/{path.name}"
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), f"{rel} is not in {patterns}"
