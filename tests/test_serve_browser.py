"""End to end: `meit serve` in a subprocess on 127.0.0.1, its page in headless Debian Chromium (Playwright).

Uploads a real wfdb record through the page's file input, then picks a bundled example, and checks that the
12 leads are drawn on the canvas, the report, findings and verdicts appear, and zoom redraws the plot. The
browser is Debian's ``/usr/bin/chromium`` (``scripts/install.sh`` installs it); nothing is downloaded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from meit.serve.examples import EXAMPLES_DIR

from .test_models_fusion import make_model

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RECORD = Path(__file__).resolve().parent / "data" / "ptbxl_real" / "records100" / "00000" / "00260_lr"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    artifact = make_model("tiny-llama", "kv").save_pretrained(tmp_path_factory.mktemp("browser") / "final")
    port = _free_port()
    log = tmp_path_factory.mktemp("log") / "server.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "meit", "serve", "--checkpoint", str(artifact),
                                 "--port", str(port), "--max-new-tokens", "12"], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"meit serve did not start (exit {proc.poll()}):\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def page(server):
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} not found: install Debian's chromium (scripts/install.sh does)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1400, "height": 1100})
            tab.goto(server)
            yield tab
        finally:
            browser.close()


def _ink(page) -> int:
    """Dark pixels on the canvas: the traces (the grid is light red, the paper off-white)."""
    return page.evaluate("""() => {
        const c = document.getElementById('ecg');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 80 && d[i + 1] < 80 && d[i + 2] < 80) n++;
        return n;
    }""")


def _wait_for_report(page) -> None:
    page.wait_for_function("() => document.getElementById('ecg').dataset.drawn === '1'", timeout=60_000)
    page.wait_for_function("() => !document.getElementById('result-panel').hidden && "
                           "document.getElementById('generate').disabled === false", timeout=120_000)


def test_upload_a_record_draws_the_leads_and_shows_the_report(page, tmp_path):
    page.set_input_files("#files", [f"{RECORD}.hea", f"{RECORD}.dat"])
    page.fill("#question", "Is there atrial fibrillation?")
    page.click("#generate")
    _wait_for_report(page)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    assert page.inner_text("#report").strip()
    assert page.inner_text("#answer").strip() and "atrial fibrillation" in page.inner_text("#answer-question")
    assert page.locator("#findings li").count() >= 1
    assert page.locator("#verify-box").is_visible()
    assert "10.00 s at 100 Hz (wfdb)" in page.inner_text("#plot-info")
    assert "generate" in page.inner_text("#timing")
    ink = _ink(page)
    assert ink > 2000, f"only {ink} dark pixels: the leads were not drawn"
    width = page.evaluate("() => document.getElementById('ecg').width")
    page.click("#zoom-in")
    assert page.evaluate("() => document.getElementById('ecg').width") > width
    page.screenshot(path=str(tmp_path / "serve_upload.png"), full_page=True)
    if os.environ.get("MEIT_SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["MEIT_SCREENSHOT_DIR"]) / "serve_upload.png"), full_page=True)


def test_pick_an_example_and_a_bad_upload(page, tmp_path):
    page.set_input_files("#files", [])
    page.select_option("#example", "00017_lr")
    page.fill("#question", "")
    page.click("#generate")
    _wait_for_report(page)
    assert "vorhofflimmern" in page.inner_text("#reference")
    assert page.locator("#answer-box").is_hidden()
    page.select_option("#layout", "rows")  # 12 full-length rows: a taller canvas
    assert page.evaluate("() => document.getElementById('ecg').height") > 0 and _ink(page) > 2000
    if os.environ.get("MEIT_SCREENSHOT_DIR"):
        page.screenshot(path=str(Path(os.environ["MEIT_SCREENSHOT_DIR"]) / "serve_example.png"), full_page=True)
    # a header without its signal file: the page shows the server's error naming the field
    page.set_input_files("#files", [str(EXAMPLES_DIR / "00293_lr.hea")])
    page.click("#generate")
    page.wait_for_function("() => !document.getElementById('error').hidden", timeout=30_000)
    assert "dat: missing" in page.inner_text("#error")
