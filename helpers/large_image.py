"""Large images from a grid of embeddings: overlapping windows, slerped conditions, averaged steps.

Graikos et al. (CVPR 2024) build a large image from a patch-level model: a grid of embeddings
(taken from a real large image, or sampled) describes the content; the canvas is covered by
overlapping windows of the patch size; each window's condition is interpolated spherically from
the nearest grid embeddings; at every denoising step all windows are denoised and their
predictions averaged where they overlap (as MultiDiffusion does), so neighbouring windows agree
and no seams appear. Naive tiling (one independent patch per grid cell) is the baseline.

References
----------
.. [1] A. Graikos et al., "Learned representation-guided diffusion models for large-image
   generation", CVPR 2024.
.. [2] O. Bar-Tal, L. Yariv, Y. Lipman, T. Dekel, "MultiDiffusion: Fusing Diffusion Paths for
   Controlled Image Generation", ICML 2023.
.. [3] K. Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985 (slerp).

Examples
--------
>>> import torch
>>> from helpers import large_image
>>> pos = large_image.window_positions(64, 64, window=32, stride=16)
>>> len(pos), large_image.overlap_weights(64, 64, pos, 32).sum(0).unique().tolist()
(9, [1.0])
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from tqdm.auto import tqdm

from .diffusion import Schedule, ddim_step, ddim_timesteps, guided_eps, to_unit
from .validation import check_finite, check_int, check_number, check_seed

__all__ = [
    "grid_conditions",
    "overlap_weights",
    "sample_large",
    "seam_ratio",
    "slerp",
    "window_positions",
]


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` ``(…, D)`` at ``t ∈ [0, 1]``.

    Directions follow the great circle (constant angular speed); lengths are interpolated
    linearly, so unit vectors stay unit vectors. Nearly parallel rows fall back to linear
    interpolation. slerp(a, b, 0) = a, slerp(a, b, 1) = b.

    Parameters
    ----------
    a, b : Tensor ``(…, D)``
    t : float or Tensor broadcastable to ``(…, 1)``

    Returns
    -------
    Tensor ``(…, D)``

    Examples
    --------
    >>> slerp(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), 0.5)
    tensor([0.7071, 0.7071])
    """
    if a.shape != b.shape:
        raise ValueError(
            f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    t = t[..., None] if t.ndim == a.ndim - 1 and t.ndim > 0 else t
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    omega = torch.arccos((ua * ub).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))  # angle
    so = torch.sin(omega)
    near = so < 1e-4
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / torch.where(near, 1, so))
    wb = torch.where(near, t, torch.sin(t * omega) / torch.where(near, 1, so))
    direction = wa * ua + wb * ub
    return direction * ((1 - t) * na + t * nb)


def window_positions(height: int, width: int, *, window: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of windows ``window × window`` at ``stride`` that exactly cover the canvas.

    Raises
    ------
    ValueError
        When the windows do not fit: ``window`` larger than the canvas, or ``(side − window)``
        not a multiple of ``stride``.
    """
    for name, v in (("height", height), ("width", width), ("window", window), ("stride", stride)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if stride > window:
        raise ValueError(
            f"stride {stride} is larger than the window {window}: pixels would be left uncovered"
        )
    for name, side in (("height", height), ("width", width)):
        if side < window or (side - window) % stride:
            raise ValueError(
                f"canvas {name} {side} does not fit windows of {window} at stride {stride}: need {name} = {window} + k·{stride}"
            )
    return [
        (top, left)
        for top in range(0, height - window + 1, stride)
        for left in range(0, width - window + 1, stride)
    ]


def overlap_weights(
    height: int, width: int, positions: list[tuple[int, int]], window: int
) -> torch.Tensor:
    """Per-window weights ``(N, height, width)`` (zero outside the window) that sum to one at every pixel.

    Each pixel's weight is 1 / (number of windows covering it): plain averaging.
    """
    count = torch.zeros(height, width)
    for top, left in positions:
        count[top : top + window, left : left + window] += 1
    if bool((count == 0).any()):
        row, col = torch.nonzero(count == 0)[0].tolist()
        tops, lefts = sorted({t for t, _ in positions}), sorted({c for _, c in positions})
        strides = sorted({b - a for seq in (tops, lefts) for a, b in pairwise(seq)})
        raise ValueError(
            f"{int((count == 0).sum())} pixels of the {height}×{width} canvas are covered by no "
            f"window (first at row {row}, column {col}): {len(positions)} windows of {window} px "
            f"at stride {', '.join(map(str, strides)) or 'none'}; need stride ≤ window and windows "
            "that reach every edge, as window_positions gives"
        )
    w = torch.zeros(len(positions), height, width)
    for n, (top, left) in enumerate(positions):
        w[n, top : top + window, left : left + window] = (
            1 / count[top : top + window, left : left + window]
        )
    return w


def grid_conditions(
    grid: torch.Tensor, positions: list[tuple[int, int]], *, patch: int, window: int
) -> torch.Tensor:
    """Each window's condition: bilinear slerp of the four grid embeddings nearest its centre.

    Grid cell ``(i, j)`` covers pixels ``[i·patch, (i+1)·patch)``; its embedding sits at the
    cell centre. A window whose centre falls between cells mixes them along the great circle,
    first along the width, then along the height.

    Parameters
    ----------
    grid : Tensor ``(gh, gw, D)``
    positions : list of (top, left)
    patch, window : int

    Returns
    -------
    Tensor ``(N, D)``
    """
    if grid.ndim != 3:
        raise ValueError(f"grid must be (rows, cols, D), got {tuple(grid.shape)}")
    check_int(patch, "patch", minimum=1)
    check_int(window, "window", minimum=1)
    gh, gw, _ = grid.shape
    out = []
    for top, left in positions:
        u = min(max((top + window / 2) / patch - 0.5, 0.0), gh - 1)  # grid row coordinate
        v = min(max((left + window / 2) / patch - 0.5, 0.0), gw - 1)
        i0, j0 = int(u), int(v)
        i1, j1 = min(i0 + 1, gh - 1), min(j0 + 1, gw - 1)
        top_row = slerp(grid[i0, j0], grid[i0, j1], v - j0)
        bottom_row = slerp(grid[i1, j0], grid[i1, j1], v - j0)
        out.append(slerp(top_row, bottom_row, u - i0))
    return torch.stack(out)


@torch.no_grad()
def sample_large(
    model: nn.Module,
    grid: torch.Tensor,
    *,
    schedule: Schedule,
    patch: int,
    stride: int | None = None,
    channels: int = 3,
    steps: int = 25,
    guidance: float = 2.0,
    seed: int = 0,
    window_batch: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """Sample a ``(C, gh·patch, gw·patch)`` image from a grid of embeddings with DDIM (η = 0).

    At every step each window of the current canvas x_t is denoised with guidance; the noise
    predictions are averaged where windows overlap (weights :func:`overlap_weights`), and one
    DDIM step is taken on the whole canvas. Because x̂₀ and the DDIM update are linear in ε̂,
    this equals averaging the windows' x̂₀ (or their x_{t−1}) as in [1]_, [2]_.
    ``stride = patch`` gives naive tiling: disjoint windows, each its own grid embedding.

    Parameters
    ----------
    model : nn.Module
        ``model(x, t, cond=…) -> ε̂`` trained on ``patch × patch`` images.
    grid : Tensor ``(gh, gw, D)``
        Embeddings of the grid cells.
    schedule : Schedule
    patch : int
        Window (and grid cell) side in pixels.
    stride : int, optional
        Window stride; default (``None``) ``patch // 2``. ``0`` is an error.
    channels, steps, guidance, seed : int, int, float, int
    window_batch : int
        Windows per model call, ``≥ 1`` (1 gives a plain loop over windows).
    progress : bool

    Returns
    -------
    Tensor ``(C, H, W)``: the image, in ``[0, 1]``.
    """
    if grid.ndim != 3:
        raise ValueError(f"grid must be (rows, cols, D), got {tuple(grid.shape)}")
    check_finite(grid, "grid")
    check_int(patch, "patch", minimum=1)
    check_int(channels, "channels", minimum=1)
    check_int(window_batch, "window_batch", minimum=1)
    check_number(guidance, "guidance")
    check_seed(seed)
    stride = patch // 2 if stride is None else stride
    h, w = grid.shape[0] * patch, grid.shape[1] * patch
    positions = window_positions(h, w, window=patch, stride=stride)
    device = next(model.parameters()).device
    weights = overlap_weights(h, w, positions, patch).to(device)  # (N, H, W)
    conds = grid_conditions(grid.float(), positions, patch=patch, window=patch).to(device)  # (N, D)
    sched = schedule.to(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((1, channels, h, w), generator=gen).to(device)  # the canvas x_T
    ts = ddim_timesteps(sched.T, steps)
    t_prevs = torch.cat([ts[1:], torch.tensor([-1])])
    was = model.training
    model.eval()
    for t, t_prev in tqdm(
        list(zip(ts.tolist(), t_prevs.tolist(), strict=True)),
        disable=not progress,
        desc="large image",
    ):
        eps = torch.zeros_like(x)
        for k in range(0, len(positions), window_batch):
            chunk = positions[k : k + window_batch]
            xs = torch.stack(
                [x[0, :, a : a + patch, b : b + patch] for a, b in chunk]
            )  # (n, C, p, p)
            tb = torch.full((len(chunk),), t, device=device, dtype=torch.long)
            e = guided_eps(model, xs, tb, cond=conds[k : k + len(chunk)], guidance=guidance)
            for n, (a, b) in enumerate(chunk):  # weighted sum = average over overlapping windows
                eps[0, :, a : a + patch, b : b + patch] += (
                    e[n] * weights[k + n, a : a + patch, b : b + patch]
                )
        x = ddim_step(eps, torch.tensor([t]), t_prev, x, sched, clip_x0=True)
    model.train(was)
    return to_unit(x[0])


def seam_ratio(image: torch.Tensor, tile: int, *, offset: int = 0) -> float:
    """Gradient energy across borders relative to the interior (≈ 1: no visible seams).

    Mean squared difference of horizontally/vertically adjacent pixel pairs that straddle a
    border, divided by the same mean over all other pairs. Borders lie at ``offset + k·tile``
    pixels (k = 0, 1, …) inside the image: ``tile = P`` measures the borders of naive ``P``-pixel
    tiles; windows at stride ``P/2`` also have borders at odd multiples of ``P/2``, measured by
    ``tile = P, offset = P // 2`` (or all of them at once by ``tile = P // 2``).

    Parameters
    ----------
    image : Tensor ``(C, H, W)``
    tile : int
        Spacing of the borders in pixels.
    offset : int
        Position of the first border, ``0 ≤ offset < tile`` (0: the image edge, not counted).

    Returns
    -------
    float

    Examples
    --------
    >>> img = torch.zeros(1, 16, 16); img[:, :, 8:] = 1  # one step edge at column 8
    >>> seam_ratio(img, 8) > 1e6, seam_ratio(img, 8, offset=4)
    (True, 0.0)
    """
    if not isinstance(tile, int) or tile < 1 or not isinstance(offset, int):
        raise ValueError(f"tile must be a positive int and offset an int, got {tile!r}, {offset!r}")
    if not 0 <= offset < tile:
        raise ValueError(f"offset must be in [0, {tile}) for tile {tile}, got {offset}")
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a floating-point tensor in [0, 1], got {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"image is empty (shape {tuple(image.shape)})")
    check_finite(image, "image")
    dy = (image[:, 1:] - image[:, :-1]).pow(2).mean(0)  # (H−1, W): pair (i, i+1)
    dx = (image[:, :, 1:] - image[:, :, :-1]).pow(2).mean(0)  # (H, W−1)
    border_y = (torch.arange(1, image.shape[1]) - offset) % tile == 0  # pair straddles a border
    border_x = (torch.arange(1, image.shape[2]) - offset) % tile == 0
    if not (border_y.any() or border_x.any()) or (border_y.all() and border_x.all()):
        raise ValueError(
            f"need an image with borders at {offset} + k·{tile} pixels inside it and pixel pairs "
            f"between them, got {tuple(image.shape)}"
        )
    seam = torch.cat([dy[border_y].flatten(), dx[:, border_x].flatten()])
    inner = torch.cat([dy[~border_y].flatten(), dx[:, ~border_x].flatten()])
    return float(seam.mean() / inner.mean().clamp_min(1e-12))
