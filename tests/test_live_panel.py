"""The slider panel in a real Jupyter frontend: Jupyter Notebook 7 serves a small notebook that
builds ``kef_panel`` for the 2D bistable system; headless Chromium runs it, moves the eigenvalue
slider, presses Train, and waits for the new figure and for the button to come back."""
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "seplib-live-panel-test"
PANEL = ("import seplib as sl\n"
         "from seplib.widgets import kef_panel\n"
         "kef_panel(sl.bistable_2d(), [-1.0, 0.0], [1.0, 0.0], epochs=200, device='cpu')")


def _notebook(path):
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": PANEL}
    path.write_text(json.dumps({"cells": [cell], "metadata": {"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}}, "nbformat": 4, "nbformat_minor": 5}))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    _notebook(root / "panel.ipynb")
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "notebook", "--no-browser", "--allow-root", "--expose-app-in-browser",
         f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}"], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"Jupyter did not start: {(root / 'server.log').read_text()[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"Jupyter exited: {(root / 'server.log').read_text()[-2000:]}")
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def _wait(browser, script, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    browser.save_screenshot(str(ROOT / "_build" / "screenshots" / "live_panel_timeout.png"))
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


READY = """
const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
const kernel = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
return !!(document.querySelector('.jp-Notebook') && kernel && kernel.status === 'idle');
"""
# The panel's state: its Train button, the eigenvalue slider's readout, figures in its output.
STATE = """
const button = Array.from(document.querySelectorAll('button')).find(b => b.textContent.includes('Train'));
if (!button) return null;
const box = button.closest('.widget-vbox');
const r = box.querySelector('.widget-readout');
return {disabled: button.disabled,
        readout: r.value !== undefined && r.value !== '' ? r.value : r.textContent,
        figures: box.querySelectorAll('.widget-output img').length};
"""


def _state_when(condition):
    """A script that returns the panel's state once ``condition`` (JS, on ``s``) holds."""
    return STATE.replace("return {", "const s = {") + f" return ({condition}) ? s : null;"


def test_the_panel_retrains_when_a_slider_moves_and_train_is_pressed(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains

    (ROOT / "_build" / "screenshots").mkdir(parents=True, exist_ok=True)
    browser.get(f"{server}/notebooks/panel.ipynb?token={TOKEN}")
    _wait(browser, READY, 120, "the notebook and an idle kernel")
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    before = _wait(browser, STATE, 180, "the panel (its first training runs in the cell)")
    assert before["figures"] == 0 and not before["disabled"], before

    handle = browser.find_element(By.CSS_SELECTOR, ".widget-vbox .widget-slider .noUi-handle, "
                                                   ".widget-vbox .widget-hslider .ui-slider-handle")
    ActionChains(browser).click_and_hold(handle).move_by_offset(20, 0).release().perform()  # eigenvalue up
    moved = _wait(browser, _state_when(f"s.readout !== {json.dumps(before['readout'])}"), 10,
                  "the slider's value to change")

    button = next(b for b in browser.find_elements(By.TAG_NAME, "button") if "Train" in b.text)
    button.click()
    after = _wait(browser, _state_when("s.figures > 0 && !s.disabled"), 180,
                  "a new figure and the Train button enabled again")
    browser.save_screenshot(str(ROOT / "_build" / "screenshots" / "live_panel.png"))
    assert after["readout"] == moved["readout"] != before["readout"]
