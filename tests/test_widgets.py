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
