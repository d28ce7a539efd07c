"""Functional: the operator dashboard (``GET /ui``) of a real node, in headless Chromium.

Four real validator processes; the page is opened as an operator would, with
the admin token in the URL fragment, in Debian's ``/usr/bin/chromium`` driven
by Selenium through Debian's ``/usr/bin/chromedriver`` (never anything Selenium
Manager would download). ``.ci/run`` installs both; on a machine without them
the test fails unless ``HYGEIA_SKIP_BROWSER=1`` asks to skip it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.functional.framework import HOST, TestNetwork, fetch, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1700",
)
TXS = 300
PAGE_TIMEOUT = 60.0
TX_BLUE = (11, 110, 153)  # --tx in style.css: the chart's transactions/s line

# Everything the test reads from the page, in one round trip.
READ_PAGE = """
const $ = (id) => document.getElementById(id);
const canvas = $("chart");
let txPixels = 0;
if (canvas.width > 0 && canvas.height > 0) {
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < d.length; i += 4) {
    if (Math.abs(d[i] - arguments[0][0]) < 8 && Math.abs(d[i + 1] - arguments[0][1]) < 8
        && Math.abs(d[i + 2] - arguments[0][2]) < 8 && d[i + 3] > 200) txPixels++;
  }
}
const rows = (id) =>
  Array.from($(id).rows).map((r) => Array.from(r.cells).map((c) => c.textContent));
const shown = (id) => $(id).getClientRects().length > 0; // laid out, not display: none
return {
  auth_shown: shown("auth"),
  dashboard_shown: shown("dashboard"),
  auth_message: $("auth-message").textContent,
  error: shown("error") ? $("error").textContent : null,
  height: $("height").textContent,
  epoch: $("epoch").textContent,
  role: $("role").textContent,
  view: $("view").textContent,
  primary: $("primary").textContent,
  peers_count: $("peers-count").textContent,
  health: $("health").textContent,
  node_name: $("node-name").textContent,
  cons_view: $("cons-view").textContent,
  peers: rows("peers-body"),
  blocks: rows("blocks-body"),
  chart_points: Number(canvas.dataset.points || 0),
  chart_max_tx: Number(canvas.dataset.maxTx || 0),
  chart_tx_pixels: txPixels,
  rate_tx: $("rate-tx").textContent,
  stored_token: sessionStorage.getItem("hygeia.adminToken"),
  url: window.location.href,
};
"""


def _browser_available() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if not missing:
        return
    if os.environ.get("HYGEIA_SKIP_BROWSER") == "1":
        pytest.skip(f"HYGEIA_SKIP_BROWSER=1 and {', '.join(missing)} missing")
    pytest.fail(
        f"{', '.join(missing)} missing: install Debian's chromium and chromium-driver "
        "(apt-get install -y --no-install-recommends chromium chromium-driver, as .ci/run "
        "does) or set HYGEIA_SKIP_BROWSER=1 to skip this test",
        pytrace=False,
    )


@pytest.fixture(scope="module")
def net(request: pytest.FixtureRequest) -> Iterator[TestNetwork]:
    network = TestNetwork(4, name="dashboard")
    failed_before = request.session.testsfailed
    network.setup()
    try:
        yield network
    finally:
        network.teardown(failed=request.session.testsfailed > failed_before)


def test_ui_is_served_without_token_and_everything_else_still_needs_it(net: TestNetwork) -> None:
    """/ui and its two assets answer 200 without a token (with a CSP that allows only
    this listener), /ui/ redirects to /ui; /status, /blocks/recent, paths next to
    /ui and a POST to /ui still answer 401; /blocks/recent lists the newest blocks
    as the client API has them and refuses a bad limit."""
    admin = net.nodes[0].admin
    ui = fetch(admin, "/ui")
    assert ui.status == 200 and ui.headers["content-type"].startswith("text/html"), ui.headers
    assert b'id="height"' in ui.body and b'src="ui/app.js"' in ui.body
    csp = ui.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp, csp
    for path, ctype in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")):
        asset = fetch(admin, path)
        assert asset.status == 200, (path, asset.headers)
        assert asset.headers["content-type"].startswith(ctype), (path, asset.headers)
        assert asset.body
    slash = fetch(admin, "/ui/")
    assert slash.status == 308 and slash.headers["location"] == "../ui", slash

    for path, method in (
        ("/status", "GET"),
        ("/blocks/recent", "GET"),
        ("/uix", "GET"),
        ("/ui/index.html", "GET"),
        ("/ui", "POST"),
    ):
        denied = fetch(admin, path, method=method)
        assert denied.status == 401 and b"unauthorized" in denied.body, (method, path, denied)

    net.wait_committed(net.submit([0, 1], 20))
    top = net.height(0)
    code, recent = net.http.request(
        admin, "GET", "/blocks/recent?limit=5", token=net.nodes[0].token
    )
    assert code == 200, recent
    blocks = recent["blocks"]
    assert [b["height"] for b in blocks] == list(
        range(blocks[0]["height"], blocks[0]["height"] - len(blocks), -1)
    )
    assert blocks[0]["height"] >= top and len(blocks) == min(5, blocks[0]["height"])
    for b in blocks:
        full = net.block(0, b["height"])
        assert b["hash"] == full["hash"] and b["txs"] == len(full["tx_hashes"]), (b, full["hash"])
        assert b["time"] == full["header"]["timestamp"]
        assert b["proposer"] == full["header"]["proposer"]
    for bad in ("0", "101", "abc", "-1"):
        code, err = net.http.request(
            admin, "GET", f"/blocks/recent?limit={bad}", token=net.nodes[0].token
        )
        assert code == 400 and err["error"]["code"] == "malformed", (bad, err)
        assert "limit" in err["error"]["message"]


def test_dashboard_in_headless_chromium_shows_live_values(net: TestNetwork, tmp_path: Path) -> None:
    """Opened at /ui#token=..., the page drops the token from the address bar, keeps it
    in sessionStorage and shows node0's live height (at least the height reached after
    committing a batch of transactions submitted while it is open), the other three
    validators in its peers table, recent blocks, and a commit-rate chart with a
    non-zero transactions/s line. A wrong token brings the token form back with a 401
    message; the right one typed into the form opens the dashboard again."""
    _browser_available()
    node = net.nodes[0]
    others = sorted(n.name for n in net.nodes[1:])

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(
        executable_path=str(CHROMEDRIVER), log_output=str(tmp_path / "chromedriver.log")
    )
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(PAGE_TIMEOUT)

        def page() -> dict[str, Any]:
            state: dict[str, Any] = driver.execute_script(READ_PAGE, list(TX_BLUE))
            return state

        def running() -> None:
            net.assert_running(range(net.n))

        base = f"http://{HOST}:{node.admin}/ui"
        driver.get(f"{base}#token={node.token}")
        first = wait_until(
            "the dashboard to show node0's status and its three peers",
            page,
            lambda s: (
                s["dashboard_shown"]
                and s["height"].isdigit()
                and sorted(row[0] for row in s["peers"]) == others
                and all(row[2] == "yes" for row in s["peers"])
            ),
            timeout=PAGE_TIMEOUT,
            interval=0.2,
            check=running,
        )
        assert "token" not in first["url"], first["url"]
        assert first["stored_token"] == node.token
        assert first["node_name"] == node.name and not first["auth_shown"], first
        assert (first["epoch"], first["role"]) == ("0", "validator"), first

        # commits while the page is open: the chart sees the counters move
        hashes = net.submit([0, 1, 2, 3], TXS)
        net.wait_committed(hashes)
        reached = net.height(0)
        net.log(f"{TXS} txs committed; node0 at height {reached}")
        shown = wait_until(
            f"the dashboard to show height >= {reached}, those blocks and a non-zero tx/s line",
            page,
            lambda s: (
                s["height"].isdigit()
                and int(s["height"]) >= reached
                and bool(s["blocks"])
                and s["blocks"][0][0].isdigit()
                and int(s["blocks"][0][0]) >= reached
                and s["chart_points"] >= 3
                and s["chart_max_tx"] > 0
                and s["chart_tx_pixels"] > 50
            ),
            timeout=PAGE_TIMEOUT,
            interval=0.2,
            check=running,
        )
        assert shown["error"] is None, shown["error"]
        assert shown["health"] == "healthy", shown
        assert shown["peers_count"].startswith("3 of 3"), shown["peers_count"]
        assert shown["view"].isdigit() and shown["cons_view"] == shown["view"], shown
        committed_in_table = sum(int(row[3]) for row in shown["blocks"])
        assert committed_in_table > 0, shown["blocks"]
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot)), "screenshot not written"
        print(f"dashboard screenshot: {shot}")

        # a wrong token: the form comes back with the 401 message
        driver.get(f"{base}#token=not-the-token")
        refused = wait_until(
            "the token form with a 401 message after a wrong token",
            page,
            lambda s: s["auth_shown"] and not s["dashboard_shown"] and "401" in s["auth_message"],
            timeout=PAGE_TIMEOUT,
            interval=0.2,
            check=running,
        )
        assert refused["stored_token"] is None, refused
        driver.save_screenshot(str(tmp_path / "dashboard-refused.png"))
        box = driver.find_element(By.ID, "token-input")
        box.send_keys(node.token)
        driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
        wait_until(
            "the dashboard again after the right token was typed into the form",
            page,
            lambda s: (
                s["dashboard_shown"] and s["height"].isdigit() and int(s["height"]) >= reached
            ),
            timeout=PAGE_TIMEOUT,
            interval=0.2,
            check=running,
        )
        driver.save_screenshot(str(tmp_path / "dashboard-after-login.png"))
    finally:
        driver.quit()
