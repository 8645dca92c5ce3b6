"""Colab's environment: ipywidgets 7.7.1 preinstalled (Colab renders that version's widgets), and
seplib installed by the chapters' install cell, `pip install git+<repository>`.

A fresh virtual environment gets what Colab has preinstalled (torch, ipywidgets 7.7.1, a kernel),
then `pip install git+file://<clone of HEAD>`; chapter 2's notebook then runs from a folder outside
the repository, its checkpoint coming from the installed package. The test fails if the install
changed ipywidgets or the chapter errors. It installs torch into the new environment (about a
minute); on a machine whose pip would pull torch's CUDA build, set PIP_EXTRA_INDEX_URL to
https://download.pytorch.org/whl/cpu (the workflows in .github/ do).
"""
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = ROOT / "book" / "02_gru_flipflop.ipynb"
COLAB = [f"torch=={torch.__version__.split('+')[0]}", "ipywidgets==7.7.1", "ipykernel", "nbclient",
         "nbformat", "numpy", "matplotlib"]

RUN_CHAPTER = """
import sys, nbformat, nbclient
nb = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": sys.argv[2]}}).execute()
print("cells run:", sum(c.cell_type == "code" for c in nb.cells))
"""


def run(*cmd, cwd=None):
    done = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=1800)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_chapter_2_runs_where_colabs_ipywidgets_is_preinstalled(tmp_path):
    clone, env, outside = tmp_path / "clone", tmp_path / "venv", tmp_path / "reader"
    run("git", "clone", "-q", ROOT, clone)
    run(sys.executable, "-m", "venv", env)
    python = env / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", *COLAB)
    run(python, "-m", "pip", "install", "-q", f"git+file://{clone}")
    outside.mkdir()   # away from any checkout: `import seplib` finds the installed package
    versions = run(python, "-c", "import ipywidgets, seplib, seplib.rnn as r; "
                   "print(ipywidgets.__version__, seplib.__file__, r.BOOK_CHECKPOINT)", cwd=outside).split()
    assert versions[0] == "7.7.1", f"installing seplib changed ipywidgets to {versions[0]}"
    assert str(env) in versions[1] and str(env) in versions[2], versions   # the installed package
    notebook = outside / CHAPTER.name
    notebook.write_text((clone / "book" / CHAPTER.name).read_text())
    assert "cells run:" in run(python, "-c", RUN_CHAPTER, notebook, outside, cwd=outside)
