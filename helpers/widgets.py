"""Interactive explorers (ipywidgets) with a static fallback.

In a live notebook :func:`snapshot_slider` shows one image at a time under a slider. Where no
frontend can draw widgets it draws a static grid with :func:`helpers.plot.image_grid` instead, so
executed notebooks keep small, deterministic outputs. Who knows that no frontend will draw them is
the program that executes the notebook, and it says so in the kernel's environment:
``COURSE_STATIC_WIDGETS=1``. The kit's runner (``python -m helpers run``), ``make test`` (nbval)
and the tests set it; plain Python and a missing ipywidgets are recognised here. Nothing is
guessed from process names or command lines.

Your own runner says it the same way, before the kernel starts (the kernel inherits the
environment):

* papermill from Python: ``os.environ["COURSE_STATIC_WIDGETS"] = "1"`` then
  ``papermill.execute_notebook(...)``; on the command line,
  ``COURSE_STATIC_WIDGETS=1 papermill in.ipynb out.ipynb``;
* ``COURSE_STATIC_WIDGETS=1 jupyter execute --inplace notebook.ipynb`` (or ``jupyter nbconvert
  --execute``);
* nbclient from a script: set ``os.environ`` as above before ``NotebookClient(nb).execute()``,
  or start the kernel yourself with ``KernelManager().start_kernel(env={..., "COURSE_STATIC_WIDGETS":
  "1"})``.

When a runner says nothing, the widget is drawn, and its output also carries a PNG of the image
shown (``image/png`` beside the widget view), so a viewer without widgets still shows a picture.

Examples
--------
>>> import torch
>>> from helpers import widgets
>>> fig = widgets.snapshot_slider(torch.rand(3, 1, 8, 8), titles=["a", "b", "c"], static=True,
...                               display=False)
>>> len(fig.axes)
3
"""

from __future__ import annotations

import base64
import io
import logging
import os
import sys
from collections.abc import Sequence

import numpy as np
import torch

from . import plot

logger = logging.getLogger(__name__)

STATIC_ENV = "COURSE_STATIC_WIDGETS"
"""Environment variable: ``1``/``true`` forces static output, ``0``/``false`` forces widgets."""


def is_static(static: bool | None = None) -> bool:
    """Whether explorers should draw static figures instead of widgets.

    Parameters
    ----------
    static : bool, optional
        Force the answer. Otherwise: ``$COURSE_STATIC_WIDGETS`` when set (the runner's word);
        else static when ipywidgets is missing or when not inside a Jupyter kernel.

    Returns
    -------
    bool
    """
    if static is not None:
        return bool(static)
    env = os.environ.get(STATIC_ENV, "").strip().lower()
    if env:
        return env in ("1", "true", "yes", "on")
    try:
        import ipywidgets  # noqa: F401
        from IPython import get_ipython
    except ImportError:
        return True
    shell = get_ipython()
    return shell is None or not hasattr(shell, "kernel") or "ipykernel" not in sys.modules


def _png(image: torch.Tensor | np.ndarray) -> bytes:
    from PIL import Image

    a = (plot.to_numpy_image(image) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(a).save(buffer, format="PNG")
    return buffer.getvalue()


def _evenly(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)``, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def snapshot_slider(
    images: torch.Tensor | Sequence,
    titles: Sequence[str] | None = None,
    *,
    static: bool | None = None,
    max_static: int = 8,
    ncols: int | None = None,
    width: int = 256,
    display: bool = True,
    name: str | None = None,
):
    """A slider over a sequence of images (e.g. snapshots of a fit), or a static grid.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` or sequence of images
        Values in [0, 1]; 1 or 3 channels (anything :func:`helpers.plot.image_grid` accepts).
    titles : sequence of str, optional
        One caption per image (e.g. ``"iteration 500"``).
    static : bool, optional
        Force the static grid (``True``) or the widget (``False``); default :func:`is_static`.
    max_static : int
        The static grid shows at most this many images, evenly spaced, first and last included.
    ncols : int, optional
        Columns of the static grid.
    width : int
        Display width of the widget image in pixels.
    display : bool
        Show the result now (``IPython.display.display`` for the widget, ``plt.show`` for the
        figure), so a notebook cell does not need to end with it (which would draw a figure twice).
        The widget's output carries a PNG of the image shown as well, for viewers without widgets.
    name : str, optional
        When static, also save the grid with :func:`helpers.plot.savefig` under this name.

    Returns
    -------
    ipywidgets.VBox or matplotlib.figure.Figure
        The widget (display it as a cell's last value), or the static figure.

    Examples
    --------
    >>> fig = snapshot_slider([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)], static=True, display=False)
    >>> type(fig).__name__
    'Figure'
    """
    items = list(images)
    if not items:
        raise ValueError("snapshot_slider needs at least one image, got none")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} images")
    if isinstance(max_static, bool) or not isinstance(max_static, int) or max_static < 1:
        raise ValueError(f"max_static must be a positive int, got {max_static!r}")
    if is_static(static):
        keep = _evenly(len(items), max_static)
        fig = plot.image_grid(
            [items[k] for k in keep],
            titles=None if titles is None else [titles[k] for k in keep],
            ncols=ncols,
        )
        if name is not None:
            plot.savefig(fig, name)
        if display:
            import matplotlib.pyplot as plt

            plt.show()
        return fig
    import ipywidgets as widgets

    frames = [_png(item) for item in items]
    view = widgets.Image(value=frames[-1], format="png", width=width)
    view.layout.image_rendering = "pixelated"
    caption = widgets.Label(value="" if titles is None else str(titles[-1]))
    slider = widgets.IntSlider(
        value=len(items) - 1, min=0, max=len(items) - 1, description="snapshot"
    )

    def show(change) -> None:
        view.value = frames[change["new"]]
        caption.value = "" if titles is None else str(titles[change["new"]])

    slider.observe(show, names="value")
    box = widgets.VBox([slider, caption, view])
    if display:
        from IPython.display import display as ipy_display

        bundle = box._repr_mimebundle_() or {}
        if isinstance(bundle, tuple):  # (data, metadata)
            bundle = bundle[0]
        if bundle:  # the widget, and a picture for viewers that cannot draw it
            ipy_display({**bundle, "image/png": base64.b64encode(frames[-1]).decode()}, raw=True)
        else:
            ipy_display(box)
    return box
