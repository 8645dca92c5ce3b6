"""The book's sources: each chapter's .md and .ipynb say the same, and point at our repository."""
import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "book").glob("[0-9]*.md"))
PAIRS = CHAPTERS + [ROOT / "book" / "bibliography.md"]   # the bibliography has no code, but opens in Colab too
REPO = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def cells(path):
    nb = jupytext.read(path)
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_chapter_is_a_pair_and_in_the_toc():
    assert [md.stem for md in CHAPTERS] == ["01_analytic_systems", "02_gru_flipflop",
                                            "03_squashed_objective", "04_many_dimensions",
                                            "05_perturbations", "06_gru_64", "07_squashed_64",
                                            "08_many_memories"]
    toc = (ROOT / "_toc.yml").read_text()
    for md in CHAPTERS:
        assert md.with_suffix(".ipynb").is_file(), f"{md.name} has no .ipynb twin: run jupytext --sync"
        assert f"book/{md.stem}" in toc


@pytest.mark.parametrize("md", PAIRS, ids=lambda p: p.stem)
def test_md_and_ipynb_have_the_same_cells(md):
    assert cells(md) == cells(md.with_suffix(".ipynb")), (
        f"{md.name} and its .ipynb differ: edit one, then `jupytext --sync book/{md.name}`")


@pytest.mark.parametrize("md", PAIRS, ids=lambda p: p.stem)
def test_ipynb_is_committed_without_outputs(md):
    nb = jupytext.read(md.with_suffix(".ipynb"))
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: p.stem)
def test_colab_badge_and_install_use_the_configured_repository(md):
    text = md.read_text()
    slug = REPO.removeprefix("https://github.com/")
    badge = f"https://colab.research.google.com/github/{slug}/blob/main/book/{md.stem}.ipynb"
    assert badge in text, f"{md.name}: Colab badge should point at {badge}"
    installs = re.findall(r'pip install -q "git\+([^"]+)"', text)
    assert installs == [REPO], f"{md.name}: install cell should install git+{REPO}"
