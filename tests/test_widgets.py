"""Tests of helpers.widgets: static fallback detection and the snapshot slider."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from helpers import widgets

matplotlib.use("Agg")


def test_static_outside_a_kernel(monkeypatch):
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)
    assert widgets.is_static() is True  # pytest is not a Jupyter kernel


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("true", True), ("0", False), ("no", False)]
)
def test_environment_variable_decides(monkeypatch, value, expected):
    monkeypatch.setenv(widgets.STATIC_ENV, value)
    assert widgets.is_static() is expected
    assert widgets.is_static(static=not expected) is (not expected)  # an explicit argument wins


def test_static_grid_shows_evenly_spaced_snapshots():
    images = torch.linspace(0, 1, 20).reshape(20, 1, 1, 1).expand(20, 1, 4, 4)
    titles = [f"iteration {10 * (k + 1)}" for k in range(20)]
    fig = widgets.snapshot_slider(images, titles, static=True, max_static=5, display=False)
    shown = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert shown == [
        "iteration 10",
        "iteration 60",
        "iteration 110",
        "iteration 150",
        "iteration 200",
    ]


def test_widget_slider_switches_images():
    pytest.importorskip("ipywidgets")
    images = [torch.zeros(1, 4, 4), torch.ones(1, 4, 4), torch.full((3, 4, 4), 0.5)]
    box = widgets.snapshot_slider(images, ["a", "b", "c"], static=False, display=False)
    slider, caption, view = box.children
    assert (slider.min, slider.max, slider.value, caption.value) == (0, 2, 2, "c")
    last = view.value
    slider.value = 0
    assert caption.value == "a" and view.value != last and view.value[:4] == b"\x89PNG"


def test_bad_input():
    with pytest.raises(ValueError, match="at least one image"):
        widgets.snapshot_slider([], static=True, display=False)
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        widgets.snapshot_slider(torch.rand(3, 1, 4, 4), ["a", "b"], static=True, display=False)


# --------------------------------------------------------------------------------------------
# headless runners: the runner's word decides, and a picture is always saved


SLIDER = (
    "import torch\n"
    "from helpers import widgets\n"
    "view = widgets.snapshot_slider([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)], ['a', 'b'])\n"
)


def _slider_notebook():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [nbformat.v4.new_code_cell(SLIDER)]
    return nb


def _mimetypes(nb) -> set[str]:
    return {k for o in nb.cells[0].outputs for k in o.get("data", {})}


@pytest.fixture
def kernel_env(monkeypatch):
    """A kernel environment as a user's own runner would leave it: inline plots, no word yet."""
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)
    return monkeypatch


def test_nbclient_script_that_says_static_gets_a_static_picture(kernel_env):
    from nbclient import NotebookClient

    kernel_env.setenv(widgets.STATIC_ENV, "1")  # what `jupyter execute` users put before it
    nb = _slider_notebook()
    NotebookClient(nb, timeout=120).execute()
    kinds = _mimetypes(nb)
    assert "image/png" in kinds and "application/vnd.jupyter.widget-view+json" not in kinds


def test_papermill_api_that_says_static_gets_a_static_picture(kernel_env, tmp_path):
    import nbformat
    import papermill as pm

    kernel_env.setenv(widgets.STATIC_ENV, "1")
    nbformat.write(_slider_notebook(), tmp_path / "in.ipynb")
    pm.execute_notebook(str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb"),
                        progress_bar=False, kernel_name="python3")  # fmt: skip
    kinds = _mimetypes(nbformat.read(tmp_path / "out.ipynb", as_version=4))
    assert "image/png" in kinds and "application/vnd.jupyter.widget-view+json" not in kinds


def test_a_runner_that_says_nothing_still_saves_a_picture_beside_the_widget(kernel_env):
    from nbclient import NotebookClient

    nb = _slider_notebook()
    NotebookClient(nb, timeout=120).execute()
    kinds = _mimetypes(nb)
    assert {"application/vnd.jupyter.widget-view+json", "image/png"} <= kinds


def test_a_static_grid_can_be_saved_by_name(tmp_path):
    from helpers import runtime

    runtime.setup("smoke", figure_dir=tmp_path, verbose=False)
    widgets.snapshot_slider(torch.rand(3, 1, 4, 4), static=True, display=False, name="01_snaps")
    assert (tmp_path / "01_snaps.png").exists()
    with pytest.raises(ValueError, match="max_static must be a positive int"):
        widgets.snapshot_slider(torch.rand(3, 1, 4, 4), static=True, display=False, max_static=0)
