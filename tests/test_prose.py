"""The book says what its cells print: a precise figure in a chapter's prose is one its own cells
printed in this build, or its sentence says where it was measured (a dated benchmark record).

Chapters print their figures in sentences (they read the same in Colab, where myst-nb's glue
roles would show as raw text); the prose beside them reads them in words or in round figures.
This test reads the executed notebooks that ``make book`` leaves in _build/jupyter_execute (make
test builds the book first) and fails on a prose figure that no output backs: one with three or
more significant digits, or any time in seconds.
"""
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXECUTED = ROOT / "_build" / "jupyter_execute" / "book"
CHAPTERS = sorted(p.stem for p in (ROOT / "book").glob("[0-9]*.md"))
# a sentence that names where its figures come from: a dated record on the results page
SOURCED = re.compile(r"record|benchmark|results\.md|RESULTS", re.I)
FIGURE = re.compile(r"(?<![\w.-])(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?(\s?%| s\b)?")


def prose(text):
    """Markdown without its maths, inline code, code blocks and link targets."""
    for pattern in (r"```.*?```", r"\$\$.*?\$\$", r"\$[^$\n]*\$", r"`[^`\n]*`", r"\]\([^)]*\)"):
        text = re.sub(pattern, " ", text, flags=re.S)
    return text


def significant(number):
    return len(number.replace(".", "").lstrip("0"))


def unbacked(chapter):
    nb = nbformat.read(EXECUTED / f"{chapter}.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for sentence in re.split(r"(?<=[.:;])\s+(?=[A-Z(])|\n\n", prose(cell.source)):
            if SOURCED.search(sentence):
                continue
            for match in FIGURE.finditer(sentence):
                unit = (match.group(3) or "").strip()
                for number in filter(None, match.group(1, 2)):
                    checked = unit == "s" or (significant(number) >= 3 and "." in number)
                    if checked and number not in printed:
                        found.append(f"{match.group(0)!r} in: {' '.join(sentence.split())[:160]}")
    return found


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_prose_figures_are_printed_or_sourced(chapter):
    if not (EXECUTED / f"{chapter}.ipynb").is_file():
        pytest.fail(f"no executed {chapter} in {EXECUTED}: run `make book` first (`make test` does)")
    assert unbacked(chapter) == []


def test_a_contradicted_figure_is_caught(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(t)", outputs=[nbformat.v4.new_output(
                    "stream", name="stdout", text="trained in 44.5 s, agreement 0.9937\n")]),
                nbformat.v4.new_markdown_cell("psi trained in 50.2 s, with agreement 0.9937. It is near "
                                              "0.99 ($\\lambda = 0.733$). The record of 2026-12-02 gave 19.5 s.")]
    nbformat.write(nb, tmp_path / "ch.ipynb")
    monkeypatch.setattr(__import__(__name__), "EXECUTED", tmp_path)
    found = unbacked("ch")
    assert len(found) == 1 and "50.2 s" in found[0]
