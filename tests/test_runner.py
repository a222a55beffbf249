"""The course runner, the command line and the doctor."""

import json

import nbformat
import pytest

from helpers import results, runtime
from helpers.__main__ import main
from helpers.course import doctor, report, runner


def test_notebooks_in_teaching_order():
    names = [p.stem for p in runner.list_notebooks()]
    assert names == sorted(names) and names[0] == "00_setup_and_tour"
    assert [p.stem for p in runner.list_notebooks(["00"])] == ["00_setup_and_tour"]
    with pytest.raises(ValueError, match="no notebook matches 99"):
        runner.list_notebooks(["99"])


def test_every_notebook_follows_the_conventions():
    for path in runner.list_notebooks():
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "parameters" in code[0].metadata.get("tags", []), path.name
        assert 'PROFILE = "auto"' in code[0].source and "SEED = 0" in code[0].source, path.name
        assert f'runtime.setup(PROFILE, seed=SEED, notebook="{path.stem}")' in code[1].source, (
            path.name
        )
        assert sum("NBVAL_CHECK_OUTPUT" in c.source for c in code) >= 3, path.name
        assert nb.cells[0].cell_type == "markdown"
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "What you should see" in text and "Exercises" in text, path.name
        assert any(c.outputs for c in code), f"{path.name} is committed without outputs"
        assert path.stat().st_size <= 3 * 1024 * 1024, path.name


def test_runner_executes_00_in_smoke_and_writes_the_report(smoke_run_00):
    report, build = smoke_run_00
    assert report.ok, report.notebooks[0].error
    root = build / "smoke"
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
    data = json.loads((root / "run.json").read_text())
    assert data["profile"] == "smoke" and data["notebooks"][0]["status"] == "ok"
    # the notebook's headline numbers are in its results file and in the report
    recorded = results.read(root / "results" / "00_setup_and_tour.json")
    assert recorded["profile"] == "smoke" and recorded["results"]
    assert data["notebooks"][0]["results"] and recorded["results"][0].label in page
    # the runner chose the kernel's threads, and the report says how the run shared the machine
    machine = report.notebooks[0].machine
    assert machine["threads"] == recorded["threads"] >= 1
    assert machine["threads_chosen"].startswith(f"{machine['threads']} thread")
    assert machine["threads_chosen"] in page and "contended" in machine
    assert data["notebooks"][0]["machine"]["cpu_cores"] >= 1


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
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    stale = tmp_path / "build" / "smoke" / "figures" / "07_from_an_earlier_run.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"png")
    report = runner.run_notebooks("smoke", out=tmp_path / "build")
    assert not report.ok and "broken on purpose" in report.notebooks[0].error
    # a figure left by an earlier (or a concurrent) run is not reported as this run's, and it
    # is not deleted either: it is not this run's to delete
    assert report.notebooks[0].figures == [] and stale.exists()
    assert "failed" in (tmp_path / "build" / "smoke" / "report.html").read_text()
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "b2")]) == 1


def test_refresh_in_place_replaces_only_notebooks_that_ran(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nbformat.write(_notebook("print('fresh output')"), folder / "01_good.ipynb")
    nbformat.write(_notebook("raise RuntimeError('broken on purpose')"), folder / "02_bad.ipynb")
    bad_before = (folder / "02_bad.ipynb").read_bytes()
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    report = runner.run_notebooks("smoke", out=tmp_path / "build", in_place=True)
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


WYSS = f"""## What you should see

{report.BEGIN}
(a stale table)
{report.END}

Prose after the table stays."""


def test_refresh_keeps_results_and_renders_what_you_should_see(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = _notebook(
        "from helpers import runtime\n"
        "run = runtime.setup(PROFILE, seed=SEED, notebook='03_demo')\n"
        "run.record('acc', 0.97, label='held-out accuracy', at_least=0.9, gpu='≈ 0.99')\n"
        "run.record('secs', 12.5, label='run time', unit='s', fmt='.1f')"
    )
    nb.cells.append(nbformat.v4.new_markdown_cell(WYSS))
    nbformat.write(nb, folder / "03_demo.ipynb")
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    rep = runner.run_notebooks("smoke", out=tmp_path / "build", in_place=True)
    assert rep.ok, rep.notebooks[0].error
    kept = results.read(folder / "results" / "03_demo.smoke.json")
    assert [r.key for r in kept["results"]] == ["acc", "secs"]
    cell = nbformat.read(folder / "03_demo.ipynb", as_version=4).cells[-1].source
    table = report.table_in_notebook(folder / "03_demo.ipynb")
    assert "(a stale table)" not in cell and cell.endswith("Prose after the table stays.")
    assert table == report.what_you_should_see("03_demo", folder / "results")
    assert "| held-out accuracy | 0.97 | ≈ 0.99 | ≥ 0.9 | pass | — |" in table
    assert "| run time | 12.5 s |" in table


@pytest.mark.parametrize("path", runner.list_notebooks(), ids=lambda p: p.stem)
def test_committed_what_you_should_see_is_rendered_from_the_committed_results(path):
    """The table a student reads is the one the committed run's results file gives."""
    kept = report.committed_results_dir()
    has_results = any(kept.glob(f"{path.stem}.*.json"))
    table = report.table_in_notebook(path)
    if table is None:
        assert not has_results, f"{path.name} has results but no table markers"
        pytest.skip(f"{path.name} has no generated table yet")
    assert has_results, f"{path.name} has table markers but no committed results"
    assert table == report.what_you_should_see(path.stem)
    lesson = runtime.project_root() / "course" / "lessons" / f"{path.stem}.md"
    page = report.table_in_text(lesson.read_text(encoding="utf-8"))
    assert page is None or page == table, f"the lesson page of {path.stem} shows another run"
    laptop = results.read(kept / f"{path.stem}.laptop.json")
    assert laptop["profile"] == "laptop" and laptop["notebook"] == path.stem


def test_cli_rejects_unknown_profile_and_notebook(capsys):
    assert main(["run", "--profile", "fast"]) == 2
    assert "valid profiles" in capsys.readouterr().err
    assert main(["run", "--only", "99"]) == 2


def test_doctor_checks_everything(capsys):
    checks = doctor.doctor()
    names = {c.name for c in checks}
    assert {"python", "torch", "device", "data brain", "data histology"} <= names
    assert all(c.ok for c in checks if c.name.startswith("data ")), [c for c in checks if not c.ok]
    code = main(["doctor"])
    out = capsys.readouterr().out
    assert "checks passed" in out and code in (0, 1)


# --------------------------------------------------------------------------------------------
# shared build folders, the checkout the kernel runs, the command line's errors


def _figure_notebook(stem: str) -> nbformat.NotebookNode:
    return _notebook(
        "import matplotlib.pyplot as plt\n"
        "from helpers import plot, runtime\n"
        f"run = runtime.setup(PROFILE, seed=SEED, notebook='{stem}')\n"
        f"plot.savefig(plt.figure(), '{stem}_figure')\n"
        "run.record('x', 1.0, label='a number')"
    )


def test_two_runs_into_one_folder_keep_each_others_figures_and_report(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for stem in ("07_first", "08_second"):
        nbformat.write(_figure_notebook(stem), folder / f"{stem}.ipynb")
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    build = tmp_path / "build"
    one = runner.run_notebooks("smoke", only=["07"], out=build)
    two = runner.run_notebooks("smoke", only=["08"], out=build)
    assert one.ok and two.ok, (one.notebooks[0].error, two.notebooks[0].error)
    figures = build / "smoke" / "figures"
    assert (figures / "07_first_figure.png").exists() and (
        figures / "08_second_figure.png"
    ).exists()
    assert two.notebooks[0].figures == ["08_second_figure.png"] and one.run_id != two.run_id
    data = json.loads((build / "smoke" / "run.json").read_text())
    listed = {nb["name"]: nb for nb in data["notebooks"]}
    assert set(listed) == {"07_first", "08_second"}  # the second run kept the first one's
    assert listed["07_first"]["figures"] == ["07_first_figure.png"]
    assert listed["07_first"]["run_id"] == one.run_id
    page = (build / "smoke" / "report.html").read_text()
    assert "07_first_figure.png" in page and "from an earlier run" in page


def test_results_of_another_run_are_never_shown_as_this_runs(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    nb = _figure_notebook("07_first")
    nb.cells.append(  # another run of the same notebook writes the same results file meanwhile
        nbformat.v4.new_code_cell(
            "from helpers import results\n"
            "results.record(run.results_path, results.Result('y', 'theirs', 2.0),\n"
            "               header={'run_id': 'someone-else'})"
        )
    )
    nbformat.write(nb, folder / "07_first.ipynb")
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    rep = runner.run_notebooks("smoke", out=tmp_path / "build")
    nb_result = rep.notebooks[0]
    assert nb_result.results == [] and nb_result.figures == []
    assert "written by another run (someone-else)" in nb_result.error
    kept = results.read(tmp_path / "build" / "smoke" / "results" / "07_first.json")
    assert [r.key for r in kept["results"]] == ["y"]  # one run's numbers, never a mixture


def test_the_kernel_runs_this_checkout_and_is_told_it_is_headless(tmp_path):
    nb = _notebook(
        "import os, helpers\n"
        "print('HELPERS', helpers.__file__)\n"
        "print('PYTHONPATH', os.environ['PYTHONPATH'])\n"
        "print('STATIC', os.environ['COURSE_STATIC_WIDGETS'], 'RUN', os.environ['COURSE_RUN_ID'])\n"
        "print('THREADS', os.environ['COURSE_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])"
    )
    src = tmp_path / "07_env.ipynb"
    nbformat.write(nb, src)
    seconds, error = runner.execute(
        src, tmp_path / "out.ipynb", profile="smoke", build=tmp_path, run_id="run-42", threads=1
    )
    assert not error, error
    cells = nbformat.read(tmp_path / "out.ipynb", 4).cells
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.outputs)
    root = str(runtime.project_root())
    assert f"HELPERS {root}/helpers/__init__.py" in text
    assert f"PYTHONPATH {root}" in text and "STATIC 1 RUN run-42" in text
    assert "THREADS 1 1" in text  # the runner's choice of threads reaches the kernel


def test_site_never_empties_a_folder_it_did_not_make(tmp_path):
    from helpers.course import website

    mine = tmp_path / "mine"
    (mine / "src").mkdir(parents=True)
    (mine / "src" / "thesis.tex").write_text("months of work")
    with pytest.raises(ValueError, match="not empty and was not made by"):
        website.assemble(mine)
    assert (mine / "src" / "thesis.tex").read_text() == "months of work"
    fresh = tmp_path / "fresh"
    src = website.assemble(fresh)  # a new folder is made and marked, then reused
    assert (fresh / website.MARKER).exists() and (src / "notebooks").is_dir()
    (src / "stale.md").write_text("old")
    website.assemble(fresh)
    assert not (src / "stale.md").exists()
    with pytest.raises(ValueError, match="is a file"):
        website.assemble(mine / "src" / "thesis.tex")


def test_cli_errors_are_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert main(["run", "--profile", "smoke", "--only", "00", "--out", str(blocker / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: cannot write") and str(blocker) in err
    assert main(["site", "--out", str(blocker / "site")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(blocker) in err

    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "build" / "x.png"))

    monkeypatch.setattr(runner, "run_notebooks", full)
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "build")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: cannot write {tmp_path / 'build' / 'x.png'}: No space left on device\n"


def _deterministic_notebook(stem: str) -> nbformat.NotebookNode:
    return _notebook(
        f"from helpers import runtime\nrun = runtime.setup(PROFILE, seed=SEED, notebook={stem!r})",
        "import os, torch\n"
        "x = torch.rand(3, generator=run.generator(1))\n"
        "print([round(v, 6) for v in x.tolist()])\n"
        "run.record('total', float(x.sum()), label='sum of three draws')",
        "print('threads', os.environ.get('COURSE_NUM_THREADS'), 'cuda', os.environ.get('CUDA_VISIBLE_DEVICES'))",
    )


def _cell_text(path, starts):
    """The printed output of the code cell whose source starts with ``starts``."""
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(starts)]
    return "".join(o.get("text", "") for o in cell.outputs)


def test_jobs_2_gives_the_outputs_of_jobs_1(tmp_path, monkeypatch):
    folder = tmp_path / "nbs"
    folder.mkdir()
    for stem in ("01_one", "02_two"):
        nbformat.write(_deterministic_notebook(stem), folder / f"{stem}.ipynb")
    monkeypatch.setattr(runner, "notebook_dir", lambda: folder)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    one = runner.run_notebooks("smoke", out=tmp_path / "b1", jobs=1)
    two = runner.run_notebooks("smoke", out=tmp_path / "b2", jobs=2)
    assert one.ok and two.ok, [nb.error for nb in one.notebooks + two.notebooks]
    assert [nb.name for nb in two.notebooks] == ["01_one", "02_two"]  # teaching order
    for a, b in zip(one.notebooks, two.notebooks, strict=True):
        assert a.results == b.results and a.results  # the same recorded numbers
        paths = [tmp_path / d / "smoke" / "notebooks" / f"{a.name}.ipynb" for d in ("b1", "b2")]
        draws = [_cell_text(p, "import os, torch") for p in paths]
        assert draws[0] == draws[1] and draws[0].startswith("[")  # the same printed draws
    # each parallel job ran with its share of the cores as its thread limit
    import torch

    share = str(max(1, runtime.cpu_cores()[0] // 2))
    devices = {"None"} if not torch.cuda.device_count() else {"0", "1"}
    for nb in two.notebooks:
        path = tmp_path / "b2" / "smoke" / "notebooks" / f"{nb.name}.ipynb"
        threads, count, cuda, device = _cell_text(path, "print('threads'").split()
        assert (threads, count, cuda) == ("threads", share, "cuda") and device in devices
    assert "02_two" in (tmp_path / "b2" / "smoke" / "report.html").read_text()


def test_job_environments_share_devices_and_cores():
    envs = runner.job_environments(3, cuda_devices=["2", "5"], cpus=16)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "5", "2"]
    assert {e["COURSE_NUM_THREADS"] for e in envs} == {"5"}
    assert runner.job_environments(4, cuda_devices=[], cpus=2)[3] == {
        "COURSE_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    with pytest.raises(ValueError, match="jobs must be a positive int, got 0"):
        runner.job_environments(0)
    assert main(["run", "--profile", "smoke", "--jobs", "0", "--only", "00"]) == 2
