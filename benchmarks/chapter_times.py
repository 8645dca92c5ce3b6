"""How long each chapter takes to execute, cell by cell: a chapter may take at most 90 s on the
project's CPU (CI executes every one, twice: in the book build and under nbval).

    .venv/bin/python benchmarks/chapter_times.py                 # every chapter
    .venv/bin/python benchmarks/chapter_times.py 06_gru_64 07_squashed_64

Each chapter runs in a fresh kernel from the book folder, as nbval runs it; the kernel's start
is not counted. Never run it beside another torch process (two on 2 cores slow each other down
many times).
"""
import argparse
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parent.parent / "book"
LIMIT_S = 90.0


def cell_times(path):
    """[(cell index, seconds, first line of its source)] for the code cells of one notebook."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(BOOK)}})
    times = []
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type == "code":
                start = time.perf_counter()
                client.execute_cell(cell, index)
                times.append((index, time.perf_counter() - start, cell.source.split("\n")[0]))
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chapters", nargs="*", help="chapter names (default: every chapter)")
    parser.add_argument("--slowest", type=int, default=3, help="how many of each chapter's slowest cells to list")
    args = parser.parse_args()
    names = args.chapters or sorted(p.stem for p in BOOK.glob("[0-9]*.ipynb"))
    rows = []
    for name in names:
        times = cell_times(BOOK / f"{name}.ipynb")
        total = sum(t for _, t, _ in times)
        rows.append((name, total))
        print(f"{name}: {total:.1f} s" + ("  OVER THE LIMIT" if total > LIMIT_S else ""), flush=True)
        for index, seconds, first in sorted(times, key=lambda r: -r[1])[:args.slowest]:
            print(f"    cell {index:2d}: {seconds:5.1f} s  {first[:60]}")
    print(f"\n| chapter | seconds (limit {LIMIT_S:.0f}) |\n|---|---|")
    for name, total in rows:
        print(f"| {name} | {total:.1f} |")


if __name__ == "__main__":
    main()
