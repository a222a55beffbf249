import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from helpers import plot, runtime


def test_to_numpy_image_layouts():
    assert plot.to_numpy_image(torch.rand(1, 5, 6)).shape == (5, 6)
    assert plot.to_numpy_image(torch.rand(3, 5, 6)).shape == (5, 6, 3)
    assert plot.to_numpy_image(np.ones((5, 6, 1)) * 2).max() == 1.0
    with pytest.raises(ValueError, match="expected one image"):
        plot.to_numpy_image(torch.rand(2, 3, 4, 5))


def test_image_grid_layout_and_titles():
    fig = plot.image_grid(torch.rand(10, 3, 8, 8), titles=[str(i) for i in range(10)], ncols=4)
    axes = fig.get_axes()
    assert len(axes) == 12  # 3 rows × 4 columns, two left empty
    assert [a.get_title() for a in axes[:10]] == [str(i) for i in range(10)]
    assert len(axes[11].images) == 0
    plt.close(fig)
    with pytest.raises(ValueError, match="2 titles for 3 images"):
        plot.image_grid(torch.rand(3, 1, 4, 4), titles=["a", "b"])
    with pytest.raises(ValueError, match="at least one image"):
        plot.image_grid([])


def test_curves_accept_y_or_xy():
    fig = plot.curves({"a": [3, 2, 1], "b": ([10, 20], [1, 2])}, ylabel="loss", logy=True)
    ax = fig.get_axes()[0]
    assert [tuple(line.get_xdata()) for line in ax.lines] == [(1, 2, 3), (10, 20)]
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "loss"
    plt.close(fig)


def test_savefig_into_run_folder(tmp_path):
    fig = plot.curves({"a": [1, 2]})
    runtime.reset()
    assert plot.savefig(fig, "00_nothing") is None
    runtime.setup("smoke", figure_dir=tmp_path / "figs", verbose=False)
    path = plot.savefig(fig, "00_curve")
    assert path == tmp_path / "figs" / "00_curve.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no folders"):
        plot.savefig(fig, "../escape")
    plt.close(fig)


def test_integer_images_are_shown_as_a_viewer_shows_them():
    assert plot.to_numpy_image(torch.full((1, 2, 2), 255, dtype=torch.uint8)).max() == 1.0
    half = plot.to_numpy_image(np.full((2, 2), 32768, dtype=np.uint16))
    assert abs(float(half.max()) - 0.5) < 1e-4  # it was clipped to 1: all white
    with pytest.raises(TypeError, match="int64"):
        plot.to_numpy_image(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        plot.to_numpy_image(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="ncols must be a positive int"):
        plot.image_grid(torch.rand(2, 1, 4, 4), ncols=0)  # it fell back to the default
