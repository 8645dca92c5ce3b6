"""Root pytest hooks: report each chapter's execution time (nbval runs one item per cell)."""
import collections

_chapter_seconds = collections.defaultdict(float)


def pytest_runtest_logreport(report):
    if report.when == "call" and report.nodeid.startswith("book/") and ".ipynb" in report.nodeid:
        _chapter_seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter):
    if _chapter_seconds:
        terminalreporter.section("chapter execution time (nbval)")
        for chapter, seconds in sorted(_chapter_seconds.items()):
            terminalreporter.write_line(f"{chapter}: {seconds:.1f} s")
        terminalreporter.write_line(f"all chapters: {sum(_chapter_seconds.values()):.1f} s")
