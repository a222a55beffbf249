"""One-click launch: every notebook carries the Colab/Binder links and the install step, all
built from the one repository URL of pyproject.toml; `auto` picks `gpu` on a Colab GPU runtime."""

from __future__ import annotations

import builtins
import re
import subprocess
import tomllib

import nbformat
import pytest

from helpers import runtime
from helpers.course import launch, runner

ROOT = runtime.project_root()
URL = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
NOTEBOOKS = runner.list_notebooks()


def test_the_url_is_read_from_pyproject():
    assert launch.repository_url() == URL
    owner, name = re.match(r"https://github\.com/([^/]+)/([^/]+)$", URL).groups()
    assert launch.colab_url("03_ddpm_ddim") == (
        f"https://colab.research.google.com/github/{owner}/{name}/blob/main/"
        "notebooks/03_ddpm_ddim.ipynb"
    )
    assert launch.binder_url("03_ddpm_ddim").startswith(
        f"https://mybinder.org/v2/gh/{owner}/{name}/"
    )
    assert launch.install_requirement() == f"imgen-course @ git+{URL}"
    with pytest.raises(ValueError, match="not of the form https://github.com"):
        launch.colab_url("00_setup_and_tour", "https://example.org/kit")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_the_links_and_the_install_step(path):
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    assert launch.links_block(path.stem, URL) in first.source, f"{path.name}: launch links"
    links = re.findall(r"\]\((https://[^)]+)\)", first.source.split(launch.LINKS_BEGIN)[1])
    assert links == [launch.colab_url(path.stem, URL), launch.binder_url(path.stem, URL)]
    assert (
        links[0].endswith(f"/notebooks/{path.name}") and (ROOT / "notebooks" / path.name).exists()
    )
    setup = nb.cells[launch.setup_cell_index(nb)]
    assert setup.source.startswith(launch.install_block(URL)), f"{path.name}: install step"
    assert f'runtime.setup(PROFILE, seed=SEED, notebook="{path.stem}")' in setup.source
    # the install step comes before the first import of the kit
    assert setup.source.index(launch.INSTALL_END) < setup.source.index("from helpers import")


def test_preparing_again_changes_nothing():
    """`python -m helpers prepare-notebooks` has been applied and is idempotent."""
    assert launch.prepare_notebooks(check=True) == []


def test_readme_and_site_carry_the_launch_table():
    stems = [p.stem for p in NOTEBOOKS]
    block = launch.page_block(stems, URL)
    for page in (ROOT / "README.md", ROOT / "course" / "index.md"):
        assert block in page.read_text(encoding="utf-8"), page.name
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.index("make figures") < 2000 and readme.index("make test") < 2000


def _course_notebook(stem: str, setup: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {stem}\n\nGoals."),
        nbformat.v4.new_code_cell('PROFILE = "auto"\nSEED = 0', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            setup
            or f'from helpers import runtime\nrun = runtime.setup(PROFILE, seed=SEED, notebook="{stem}")'
        ),
    ]
    return nb


def test_prepare_works_on_any_notebook_that_follows_the_conventions(tmp_path):
    pages = {p: p.read_text() for p in (ROOT / "README.md", ROOT / "course" / "index.md")}
    path = tmp_path / "06_new_topic.ipynb"
    nbformat.write(_course_notebook("06_new_topic"), path)
    assert launch.prepare_notebooks([path], url=URL, check=True) != []
    assert nbformat.read(path, as_version=4).cells[0].source == "# 06_new_topic\n\nGoals."
    assert path in launch.prepare_notebooks([path], url=URL)
    once = path.read_text()
    assert path not in launch.prepare_notebooks([path], url=URL)
    assert path.read_text() == once
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].source.count(launch.LINKS_BEGIN) == 1
    assert nb.cells[2].source.count(launch.INSTALL_BEGIN) == 1
    # a changed URL replaces the blocks, it does not add a second pair
    launch.prepare_notebooks([path], url="https://github.com/other/kit")
    nb = nbformat.read(path, as_version=4)
    assert "github/other/kit/blob/main/notebooks/06_new_topic.ipynb" in nb.cells[0].source
    assert URL not in nb.cells[0].source + nb.cells[2].source
    assert nb.cells[2].source.count(launch.INSTALL_BEGIN) == 1
    # preparing named notebooks leaves the course's pages alone
    assert all(p.read_text() == text for p, text in pages.items())


def test_prepare_refuses_notebooks_off_the_conventions():
    nb = _course_notebook("07_x", setup="print('no setup here')")
    with pytest.raises(ValueError, match=r"runtime\.setup"):
        launch.prepare_notebook(nb, "07_x", URL)
    nb = _course_notebook("07_x")
    nb.cells.insert(0, nbformat.v4.new_code_cell("x = 1"))
    with pytest.raises(ValueError, match="first cell must be markdown"):
        launch.prepare_notebook(nb, "07_x", URL)


def _run_install_block(monkeypatch, importable: bool) -> tuple[list, dict]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("helpers") and not importable:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    namespace: dict = {}
    exec(compile(launch.install_block(URL), "<setup cell>", "exec"), namespace)
    monkeypatch.setattr(builtins, "__import__", real_import)
    return calls, namespace


def test_install_step_does_nothing_where_the_kit_is_installed(monkeypatch, capsys):
    calls, _ = _run_install_block(monkeypatch, importable=True)
    assert calls == [] and capsys.readouterr().out == ""


def test_install_step_installs_quietly_and_says_so_where_it_is_missing(monkeypatch, capsys):
    calls, _ = _run_install_block(monkeypatch, importable=False)
    ((cmd, kwargs),) = calls
    assert cmd[1:] == ["-m", "pip", "install", "--quiet", f"imgen-course @ git+{URL}"]
    assert kwargs == {"check": True}
    out = capsys.readouterr().out
    assert "installed the course kit" in out and URL in out


def test_auto_picks_gpu_on_a_colab_gpu_runtime(monkeypatch, no_profile_env):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20260101")
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: True)
    assert runtime.resolve_profile("auto") == "gpu"
    monkeypatch.setattr(runtime.torch.cuda, "is_available", lambda: False)
    assert runtime.resolve_profile("auto") == "laptop"
