"""Open every built page in headless Chromium: figures load, Colab links point at the chapter's
.ipynb, and the precomputed slider changes the figure. Needs `make book` first (make test does it).
The ``browser`` fixture is in conftest.py.
"""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.md"))
PAGES = ["book/intro.html"] + [f"book/{c}.html" for c in CHAPTERS] + ["book/bibliography.html"]


@pytest.fixture(autouse=True, scope="module")
def built_book():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` first (`make test` does)")


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


@pytest.mark.parametrize("page", PAGES)
def test_page_figures_load(browser, page):
    _open(browser, page)
    assert browser.execute_script(BROKEN_IMAGES) == []
    if page.removeprefix("book/").removesuffix(".html") in CHAPTERS:
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
    first = browser.execute_script(visible)
    shown = browser.execute_script("return +document.querySelector('.seplib-frames input').value")
    assert first >= 0 and first == shown   # the frame shown is the slider's
    other = browser.execute_script("""
      const r = document.querySelector('.seplib-frames input');
      r.value = r.value == 0 ? r.max : 0; r.dispatchEvent(new Event('input')); return +r.value;""")
    assert other != first and browser.execute_script(visible) == other


# Typeset by MathJax (served from the built site): no raw TeX delimiters left in the prose.
TYPESET = """
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup) { done({error: 'MathJax did not load'}); return; }
MathJax.startup.promise.then(() => {
  const main = document.querySelector('main').cloneNode(true);
  main.querySelectorAll('pre, code, .cell_input').forEach(e => e.remove());
  const text = main.innerText;
  done({typeset: document.querySelectorAll('mjx-container').length,
        raw: ['\\\\(', '\\\\[', '$$'].filter(d => text.includes(d)),
        src: Array.from(document.scripts).map(s => s.src).filter(s => s.includes('tex-mml-chtml'))});
});
"""


@pytest.mark.parametrize("page", PAGES[:-1])   # the bibliography has no equations, so no MathJax
def test_equations_are_typeset_by_the_sites_own_mathjax(browser, page):
    _open(browser, page)
    browser.set_script_timeout(30)
    result = browser.execute_async_script(TYPESET)
    assert "error" not in result, result
    assert result["raw"] == [], f"{page}: raw TeX left in the text: {result['raw']}"
    assert result["src"] and all(s.startswith("file:") for s in result["src"]), result["src"]
    assert result["typeset"] >= 3, f"{page}: only {result['typeset']} equations typeset"


# Code cells, and the text they print, whose lines are wider than the page's code column
# scroll sideways: a reader has to scroll to read the end of a result.
TOO_WIDE = """
return Array.from(document.querySelectorAll('.cell_input pre, .cell_output pre, main div.highlight pre'))
  .filter(p => p.scrollWidth > p.clientWidth + 1)
  .map(p => p.textContent.split('\\n').reduce((a, l) => l.length > a.length ? l : a, ''));
"""


# Slider frames sharp enough to read their legends (frames_slider renders them at 130 dpi): the
# narrowest figures, 5.5 inches wide, come out 550-600 px once their margins are cropped, where at
# the 80 dpi of before they were at most 440 px.
SMALL_FRAMES = """
return Array.from(document.querySelectorAll('.seplib-frames img'))
  .filter(i => i.naturalWidth < 520).map(i => i.alt + ': ' + i.naturalWidth + ' px');
"""


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_slider_frames_are_rendered_sharp(browser, chapter):
    _open(browser, f"book/{chapter}.html")
    assert browser.execute_script(SMALL_FRAMES) == []


@pytest.mark.parametrize("page", ["intro"] + CHAPTERS)
def test_no_code_block_or_printed_result_scrolls_sideways(browser, page):
    # window widths where the theme's columns change: the text is narrowest just above 1200 px,
    # where the on-page contents appear beside it; code in cells and in the prose alike
    try:
        for width in (1000, 1200, 1250, 1280, 1300, 1440):
            browser.set_window_size(width, 2000)
            _open(browser, f"book/{page}.html")
            assert browser.execute_script(TOO_WIDE) == [], f"at a window {width} px wide"
    finally:
        browser.set_window_size(1280, 2000)


def test_the_bibliography_lists_the_cited_works(browser):
    _open(browser, "book/bibliography.html")
    text = browser.execute_script("return document.querySelector('main').innerText")
    for author in ("Dabholkar", "Koopman", "Mezić", "Budišić", "Sussillo", "Cho", "Chen"):
        assert author in text, f"{author} missing from the bibliography"
    _open(browser, "book/intro.html")
    links = browser.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.href)"
                                   ".filter(h => h.includes('bibliography.html#id'))")
    assert links, "the intro's citations should link into the bibliography"


def test_launch_buttons_offer_colab_and_binder(browser):
    _open(browser, f"book/{CHAPTERS[0]}.html")
    links = browser.execute_script("return Array.from(document.querySelectorAll('a')).map(a => a.href)")
    assert any("mybinder.org/v2/gh/" in link for link in links), "no Binder launch button"
    assert any("colab.research.google.com/github" in link for link in links)
