"""The course runner, the command line and the doctor."""

import json

import nbformat
import pytest

from helpers import course
from helpers.__main__ import main


def test_notebooks_in_teaching_order():
    names = [p.stem for p in course.list_notebooks()]
    assert names == sorted(names) and names[0] == "00_setup_and_tour"
    assert [p.stem for p in course.list_notebooks(["00"])] == ["00_setup_and_tour"]
    with pytest.raises(ValueError, match="no notebook matches 99"):
        course.list_notebooks(["99"])


def test_every_notebook_follows_the_conventions():
    for path in course.list_notebooks():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert 'PROFILE = "auto"' in code[0].source and "SEED = 0" in code[0].source, path.name
        assert "runtime.setup(PROFILE, seed=SEED)" in code[1].source, path.name
        assert sum("NBVAL_CHECK_OUTPUT" in c.source for c in code) >= 3, path.name
        assert nb.cells[0].cell_type == "markdown"
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "What you should see" in text and "Exercises" in text, path.name
        assert any(c.outputs for c in code), f"{path.name} is committed without outputs"
        assert path.stat().st_size <= 3 * 1024 * 1024, path.name


def test_runner_executes_00_in_smoke_and_writes_the_report(tmp_path):
    report = course.run_notebooks("smoke", only=["00"], out=tmp_path)
    assert report.ok, report.notebooks[0].error
    root = tmp_path / "smoke"
    page = (root / "report.html").read_text()
    assert "00_setup_and_tour" in page and "profile <b>smoke</b>" in page and "device <b>" in page
    figures = report.notebooks[0].figures
    assert "00_datasets_gallery.png" in figures
    for fig in figures:
        assert (root / "figures" / fig).exists() and f"figures/{fig}" in page
    executed = nbformat.read(root / "notebooks" / "00_setup_and_tour.ipynb", as_version=4)
    assert any(
        "profile=smoke" in o.get("text", "")
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.outputs
    )
    data = json.loads((root / "results.json").read_text())
    assert data["profile"] == "smoke" and data["notebooks"][0]["status"] == "ok"


def _notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell('PROFILE = "auto"\nSEED = 0', metadata={"tags": ["parameters"]}),
        *(nbformat.v4.new_code_cell(src) for src in sources),
    ]
    return nb


def test_runner_reports_a_failing_notebook(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(_notebook("raise RuntimeError('broken on purpose')"), folder / "07_broken.ipynb")
    monkeypatch.setattr(course, "notebook_dir", lambda: folder)
    stale = tmp_path / "build" / "smoke" / "figures" / "07_from_an_earlier_run.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"png")
    report = course.run_notebooks("smoke", out=tmp_path / "build")
    assert not report.ok and "broken on purpose" in report.notebooks[0].error
    # a figure left by an earlier run is not reported as this run's
    assert report.notebooks[0].figures == [] and not stale.exists()
    assert "failed" in (tmp_path / "build" / "smoke" / "report.html").read_text()
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "b2")]) == 1


def test_refresh_in_place_replaces_only_notebooks_that_ran(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(_notebook("print('fresh output')"), folder / "01_good.ipynb")
    nbformat.write(_notebook("raise RuntimeError('broken on purpose')"), folder / "02_bad.ipynb")
    bad_before = (folder / "02_bad.ipynb").read_bytes()
    monkeypatch.setattr(course, "notebook_dir", lambda: folder)
    report = course.run_notebooks("smoke", out=tmp_path / "build", in_place=True)
    good, bad = report.notebooks
    assert good.status == "ok" and bad.status == "failed"
    refreshed = nbformat.read(folder / "01_good.ipynb", as_version=4)
    assert "fresh output" in refreshed.cells[1].outputs[0]["text"]
    assert "papermill" not in refreshed.metadata  # run metadata stripped for clean diffs
    # The failing notebook keeps its committed content; its failed run is kept under build/.
    assert (folder / "02_bad.ipynb").read_bytes() == bad_before
    assert (tmp_path / "build" / "smoke" / "refresh" / "02_bad.ipynb").exists()
    assert "left unchanged" in bad.error
    assert sorted(p.name for p in folder.iterdir()) == ["01_good.ipynb", "02_bad.ipynb"]


def test_cli_rejects_unknown_profile_and_notebook(capsys):
    assert main(["run", "--profile", "fast"]) == 2
    assert "valid profiles" in capsys.readouterr().err
    assert main(["run", "--only", "99"]) == 2


def test_doctor_checks_everything(capsys):
    checks = course.doctor()
    names = {c.name for c in checks}
    assert {"python", "torch", "device", "data brain", "data histology"} <= names
    assert all(c.ok for c in checks if c.name.startswith("data ")), [c for c in checks if not c.ok]
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert "checks passed" in out and code in (0, 1)
