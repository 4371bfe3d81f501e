"""The dashboard in a real browser: Playwright drives Debian's chromium (installed by scripts/setup.sh
from the package manager; never `playwright install`) through every view of `streamlit run app/main.py`
on the tiny runs, started as the README's demo starts it (from the checkout, so .streamlit/config.toml
applies). It fails on any exception box, error box or traceback text, checks that the server listens on
127.0.0.1 only, and saves a screenshot of each view to outputs/screenshots/ (git-ignored).

Skipped only where chromium or the playwright package is missing AND this is not CI; CI (CI=1, set by
.ci/run) must run it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from app_helpers import TABS, damage_weights, shared_tiny_runs

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CLICKPROMPT_CHROMIUM", "/usr/bin/chromium")
# without the background-networking flags Chromium's own outgoing connections (updates, sync, field
# trials) are refused here many at a time; none of them is needed to render a local page
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "outputs" / "screenshots"
IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _require_browser():
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium; scripts/setup.sh does it)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if IN_CI:
            pytest.fail(message + " -- CI must run it")
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            local, state = parts[1], parts[3]
            addr, hexport = local.rsplit(":", 1)
            if state == "0A" and int(hexport, 16) == port:  # 0A = LISTEN
                if len(addr) == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(addr[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """`streamlit run app/main.py -- --runs <tiny runs + a damaged copy>` on a free port, from the checkout."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser")
    runs = root / "runs"
    shutil.copytree(shared_tiny_runs(tmp_path_factory), runs)
    shutil.copytree(runs / "ctr", runs / "ctr-damaged")
    damage_weights(runs / "ctr-damaged")
    port = _free_port()
    log = open(root / "streamlit.log", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "CLICKPROMPT_CACHE_DIR": str(root / "cache"), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
                             "--", "--runs", str(runs)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {(root / 'streamlit.log').read_text()[-2000:]}")
            time.sleep(0.3)
        from clickprompt.rundir import RunDir

        user = str(RunDir(runs / "ctr").dataset().frames["test"]["user_id"].iloc[0])  # a user of the test split
        yield {"url": url, "port": port, "log": root / "streamlit.log", "runs": runs, "user": user}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_idle(page, timeout: float = 180.0) -> None:
    """Until the app's script has run and stayed idle for half a second."""
    app = page.locator('[data-testid="stApp"]')
    deadline = time.monotonic() + timeout
    idle_since = None
    while time.monotonic() < deadline:
        state = app.get_attribute("data-test-script-state") if app.count() else None
        if state == "notRunning":
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 0.5:
                return
        else:
            idle_since = None
        time.sleep(0.1)
    raise AssertionError(f"the app did not finish running within {timeout} s")


def _assert_clean(page, view: str) -> None:
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"{view}: exception box: {exceptions.first.inner_text()[:500]}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"{view}: error box: {errors.first.inner_text()[:500]}"
    text = page.inner_text("body")
    for needle in ("Traceback", 'File "/', "Ask Google", "Ask ChatGPT"):
        assert needle not in text, f"{view}: {needle!r} on the page"


def test_every_view_in_chromium(dashboard):
    from playwright.sync_api import sync_playwright

    assert _listening_addresses(dashboard["port"]) == {"127.0.0.1"}  # .streamlit/config.toml: this machine only
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 2200})  # tall: a whole view per screenshot
            page.goto(dashboard["url"], wait_until="domcontentloaded")
            page.wait_for_selector('[data-testid="stApp"]', timeout=60_000)
            page.get_by_role("tab", name="Runs").wait_for(timeout=120_000)
            _wait_idle(page)
            sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
            assert "ctr-damaged is damaged" in sidebar and "checksum mismatch" in sidebar
            for i, tab in enumerate(TABS, 1):
                page.get_by_role("tab", name=tab).click()
                _wait_idle(page)
                if tab == "Score samples":  # the case that plotted row numbers on a continuous axis
                    page.get_by_label("User ID (optional)").fill(dashboard["user"])
                    page.get_by_label("User ID (optional)").press("Enter")
                    _wait_idle(page)
                    assert "matching rows" in page.inner_text("body")
                if tab == "Attributions":  # the with-PLM checkpoint: fields and tokens
                    page.locator('[data-testid="stSelectbox"]').filter(has_text="Checkpoint").click()
                    page.get_by_role("option", name="finetune-with-plm").click()
                    _wait_idle(page)
                    page.get_by_text("Compute attributions").click()
                    _wait_idle(page)
                    assert "Token attributions" in page.inner_text("body")
                if tab == "Latency":
                    page.get_by_text("Measure latency").click()
                    _wait_idle(page)
                _assert_clean(page, tab)
                body = page.inner_text("body")
                if tab != "Runs":
                    plot = page.locator(".js-plotly-plot").first
                    plot.wait_for(timeout=30_000)
                    plot.hover()  # the chart's toolbar: its camera button saves a PNG
                    png = page.locator(".modebar-btn[data-title^='Download plot']")
                    png.first.wait_for(state="attached", timeout=10_000)
                if tab in ("Runs", "Score samples", "Long tail", "Latency"):
                    assert page.locator('[data-testid="stDataFrame"]').count() >= 1
                    assert "Download CSV" in body
                page.mouse.move(0, 0)  # no hover label over the charts
                page.screenshot(path=str(SHOTS / f"{i:02d}-{tab.lower().replace(' ', '-').replace('&', 'and')}.png"),
                                full_page=True)
        finally:
            browser.close()
    server_log = dashboard["log"].read_text()
    assert "Traceback" not in server_log, server_log[-3000:]
