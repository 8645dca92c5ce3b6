"""Open every built page in headless Chromium: figures load, Colab links point at the chapter's
.ipynb, and the precomputed slider changes the figure. Needs `make book` first (make test does it).
"""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.md"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--window-size=1280,2000"]


def _find_or_install_chromium():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        if shutil.which("apt-get") and os.geteuid() == 0:
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(["apt-get", "update", "-qq"], env=env, timeout=600, check=False)
            subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                           env=env, timeout=900, check=False, stdout=subprocess.DEVNULL)
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` first (`make test` does)")
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


def _open(browser, page):
    browser.get((HTML / page).as_uri())
    browser.execute_script("return document.readyState")
    (ROOT / "_build" / "screenshots").mkdir(exist_ok=True)
    browser.save_screenshot(str(ROOT / "_build" / "screenshots" / f"{Path(page).stem}.png"))


# Local images: figures (data: URIs) and the theme's own files, not remote badges.
BROKEN_IMAGES = """
return Array.from(document.images)
  .filter(i => !i.src.startsWith('http'))
  .filter(i => !(i.complete && i.naturalWidth > 0) && getComputedStyle(i).display !== 'none')
  .map(i => i.alt || i.src.slice(0, 60));
"""


@pytest.mark.parametrize("page", ["book/intro.html"] + [f"book/{c}.html" for c in CHAPTERS])
def test_page_figures_load(browser, page):
    _open(browser, page)
    assert browser.execute_script(BROKEN_IMAGES) == []
    if page != "book/intro.html":
        figures = browser.execute_script(
            "return document.querySelectorAll('.cell_output img').length")
        assert figures >= 3, f"{page}: only {figures} figures in the cell outputs"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_colab_links_point_at_the_chapters_notebook(browser, chapter):
    _open(browser, f"book/{chapter}.html")
    links = browser.execute_script(
        "return Array.from(document.querySelectorAll('a')).map(a => a.href)"
        ".filter(h => h.includes('colab.research.google.com/github'))")
    assert len(links) >= 2, "expected the badge and the launch button"
    assert all(link.endswith(f"/book/{chapter}.ipynb") for link in links), links


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_precomputed_slider_changes_the_figure(browser, chapter):
    _open(browser, f"book/{chapter}.html")
    visible = """
      const box = document.querySelector('.seplib-frames');
      return Array.from(box.querySelectorAll('img')).findIndex(i => i.style.display !== 'none');"""
    last = browser.execute_script(visible)
    assert last >= 1
    browser.execute_script("""
      const r = document.querySelector('.seplib-frames input');
      r.value = 0; r.dispatchEvent(new Event('input'));""")
    assert browser.execute_script(visible) == 0
