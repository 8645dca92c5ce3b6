"""Shared test fixtures: a seeded torch generator for every test, a headless Chromium for the
browser tests."""
import os
import shutil
import subprocess
import matplotlib
import pytest
import torch

matplotlib.use("Agg")  # tests draw figures without a screen

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--window-size=1280,2000"]


@pytest.fixture(autouse=True)
def _seeded_torch():
    """Every test starts from the same state of torch's global generator, so an unseeded draw
    in a test does not depend on which tests ran before it (one such draw missed its tolerance
    about one run in ten)."""
    torch.manual_seed(0)


def _which_browser():
    """Chromium (Debian's), or Chrome (GitHub's runners), and its driver."""
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if driver is None and os.environ.get("CHROMEWEBDRIVER"):
        driver = shutil.which("chromedriver", path=os.environ["CHROMEWEBDRIVER"])
    return binary, driver


def _find_or_install_chromium():
    if not all(_which_browser()) and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=600, check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                       env=env, timeout=900, check=False, stdout=subprocess.DEVNULL)
    return _which_browser()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium driven by selenium (Chrome where there is no Chromium)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    chromium, driver = _find_or_install_chromium()
    if not (chromium and driver):
        pytest.skip("no Chromium here and none could be installed (apt-get install chromium "
                    "chromium-driver): the browser check needs one")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS + [f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=driver)
    b = webdriver.Chrome(options=options, service=service)
    yield b
    b.quit()
