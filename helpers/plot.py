"""Image grids, curves, and ``savefig`` into the current run's figure folder.

Examples
--------
>>> import torch
>>> from helpers import plot
>>> fig = plot.image_grid(torch.rand(4, 1, 8, 8), titles=list("abcd"))
>>> plot.savefig(fig, "00_example") is None  # no run set up: nothing is written
True
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch

from . import files, runtime

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _unit_float(a: np.ndarray) -> np.ndarray:
    """Pixel values as float32 in [0, 1] as a viewer reads them: unsigned integers divided by
    their type's maximum (255 for uint8), booleans as 0/1, floats as they are."""
    if a.dtype == np.bool_:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.unsignedinteger):
        return a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    if np.issubdtype(a.dtype, np.floating):
        return a.astype(np.float32)
    raise TypeError(
        f"cannot show an image of dtype {a.dtype}: pass floats in [0, 1] or unsigned integers"
    )


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(C, H, W)`` tensor or ``(H, W[, C])`` array → ``(H, W)`` or ``(H, W, 3)`` array in [0, 1].

    Unsigned integers are scaled by their type's maximum (``uint8`` / 255), as a viewer shows
    them; floats are clipped to [0, 1].
    """
    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        a = _unit_float((t.float() if t.dtype == torch.bfloat16 else t).numpy())
        if a.ndim == 3:
            a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    else:
        a = _unit_float(np.asarray(image))
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
    if a.ndim not in (2, 3) or min(a.shape[:2]) < 1 or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(
            f"expected one image (C, H, W) or (H, W[, C]) with 1, 3 or 4 channels, got shape "
            f"{tuple(image.shape) if hasattr(image, 'shape') else a.shape}"
        )
    return np.clip(a, 0, 1)


def image_grid(
    images: torch.Tensor | Sequence,
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    size: float = 1.6,
    cmap: str = "gray",
    suptitle: str | None = None,
) -> matplotlib.figure.Figure:
    """Show images in a grid.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` or sequence of images
        Values in [0, 1]; 1 or 3 channels.
    titles : sequence of str, optional
        One title per image.
    ncols : int, optional
        Columns (default ``None``: up to 8); ``0`` is an error.
    size : float
        Inches per image.
    cmap : str
        Colour map for single-channel images.
    suptitle : str, optional
        Title of the whole figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    items = list(images)
    if not items:
        raise ValueError("image_grid needs at least one image, got none")
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"got {len(titles)} titles for {len(items)} images")
    if ncols is None:
        ncols = min(len(items), 8)
    elif isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ValueError(f"ncols must be a positive int or None, got {ncols!r}")
    nrows = math.ceil(len(items) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(items):
            ax.imshow(to_numpy_image(items[k]), cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def curves(
    series: Mapping[str, Sequence[float]] | Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str = "iteration",
    ylabel: str = "",
    title: str | None = None,
    logx: bool = False,
    logy: bool = False,
    ax: matplotlib.axes.Axes | None = None,
) -> matplotlib.figure.Figure:
    """Plot named curves; each value is ``y`` or a pair ``(x, y)``."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5, 3.4))
    else:
        fig = ax.figure
    for label, values in series.items():
        if isinstance(values, tuple) and len(values) == 2:
            x, y = values
        else:
            y = values
            x = np.arange(1, len(y) + 1)
        ax.plot(np.asarray(x), np.asarray(y, dtype=float), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def savefig(
    fig: matplotlib.figure.Figure,
    name: str,
    *,
    dpi: int = 80,
    run: runtime.Run | None = None,
    caption: str | None = None,
) -> Path | None:
    """Save ``fig`` as ``<figure_dir>/<name>.png`` of the current run.

    Parameters
    ----------
    fig : Figure
        The figure to save.
    name : str
        File stem, e.g. ``"01_fig2_fitting_curves"``: letters, digits, ``_ . -``; start names with
        the notebook number so the report and the figure map can find them.
    dpi : int
        Resolution (modest by default, so notebooks stay small).
    run : Run, optional
        Defaults to :func:`helpers.runtime.current`.
    caption : str, optional
        What the figure shows, in a sentence. Stored in the PNG (its ``Description`` text chunk,
        :func:`caption_of`); the run report shows it under the figure and as its alt text.
        Without it the report takes the figure's row of ``course/figure_map.md``.

    Returns
    -------
    Path or None
        Where the file was written, or ``None`` when no run is set up.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"figure name {name!r} must be letters, digits, '_', '.', '-' (no folders)"
        )
    if caption is not None and (not isinstance(caption, str) or not caption.strip()):
        raise ValueError(f"caption must be a non-empty string, got {caption!r}")
    run = run or runtime.current()
    if run is None:
        logger.info("no run set up: figure %s not saved", name)
        return None
    run.figure_dir.mkdir(parents=True, exist_ok=True)
    path = run.figure_dir / f"{name}.png"
    metadata = {"Description": caption.strip()} if caption else None
    with files.atomic_write(path, fsync=False) as tmp:  # another run may be reading this name
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png", metadata=metadata)
    run.record_figure(path.name)
    return path


def caption_of(path: str | Path) -> str | None:
    """The caption stored in a PNG by :func:`savefig` (``caption=``), or ``None``."""
    from PIL import Image

    with Image.open(path) as image:
        text = getattr(image, "text", {}) or {}
    caption = text.get("Description")
    return caption.strip() if caption and caption.strip() else None
