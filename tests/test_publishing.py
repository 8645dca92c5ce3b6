"""What takes the book to its readers: the workflows, Binder, the licence and the citation."""
import stat
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def workflow(name):
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def steps(flow, job):
    return flow["jobs"][job]["steps"]


def test_the_book_workflow_builds_with_make_book_and_deploys_to_pages():
    flow = workflow("book.yml")
    assert flow["permissions"]["pages"] == "write" and flow["permissions"]["id-token"] == "write"
    build = steps(flow, "build")
    assert any(s.get("run") == "make book" for s in build)
    upload = [s for s in build if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert any(s.get("uses", "").startswith("actions/deploy-pages") for s in steps(flow, "deploy"))
    assert flow["jobs"]["deploy"]["needs"] == "build"


def test_the_test_workflow_runs_ci_on_pull_requests_with_the_cpu_torch():
    flow = workflow("test.yml")
    assert "pull_request" in flow[True]   # YAML reads the key `on` as True
    run = [s for s in steps(flow, "test") if s.get("run") == ".ci/run"]
    assert run and "download.pytorch.org/whl/cpu" in run[0]["env"]["PIP_EXTRA_INDEX_URL"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_binder_has_the_cpu_torch_and_installs_seplib():
    requirements = (ROOT / "binder" / "requirements.txt").read_text()
    assert "download.pytorch.org/whl/cpu" in requirements and "torch==2.13.0" in requirements
    post = ROOT / "binder" / "postBuild"
    assert post.stat().st_mode & stat.S_IXUSR and "pip install" in post.read_text()
    launch = yaml.safe_load((ROOT / "_config.yml").read_text())["launch_buttons"]
    assert launch["binderhub_url"] == "https://mybinder.org" and launch["thebe"] is False


def test_licence_citation_and_contributing():
    licence = (ROOT / "LICENSE").read_text()
    assert "MIT License" in licence and "CC BY 4.0" in licence
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert "2505.15231" in str(cff["preferred-citation"])
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert "jupytext --sync" in contributing and "make test" in contributing
