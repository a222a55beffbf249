"""Nearest-training-image search: does a generative model hand back copies of its training set?

For every generated image we look for the most similar training image under one of three
measures, each computed as chunked matrix products so that memory stays bounded (one block of
``batch_size × batch_size`` similarities at a time) and the search runs on CPU, CUDA or MPS:

* Pearson correlation of the flattened pixels (Akbar et al.): rows are standardised (mean 0,
  norm 1), so one matrix product gives every correlation. Invariant to brightness and contrast.
* cosine similarity of feature vectors, e.g. of a self-supervised encoder (Somepalli et al.).
* tiled ℓ2 distance (Carlini et al.): the image is cut into a ``grid × grid`` tile grid, the
  root-mean-square distance is measured per tile and the largest tile distance counts, so two
  images are close only when *every* tile is close;
* Carlini et al.'s relative criterion (:func:`relative_l2`): the ℓ2 distance to the nearest
  training image divided by the mean distance to the 50 nearest; a copy is much closer to one
  training image than to its other neighbours, however alike all images are.

The matrix products run in float32 by default, whose rounding could let a near-duplicate
outscore an exact copy. So the products only collect the candidates within rounding of the best,
and those are scored again one pair at a time in float64: the best match reported is the one a
direct float64 computation gives (lowest training index among exact ties). The search machinery
is in :mod:`helpers.nearest_neighbours`.

What the best matches say:

* :func:`memorization_rate` — the share of generated images whose best match passes a threshold,
  and :func:`rate_interval` its bootstrap confidence interval (over the generated images and, for
  a calibrated threshold, over the calibration images too);
* :func:`calibrated_threshold` — a threshold read off real images that were *not* trained on
  (by definition not copies): at the 99th percentile of their best-match similarity, at most
  1 % of genuinely new images are flagged. Needed where all images look alike (brain slices
  correlate above 0.95 with their nearest neighbour anyway, so a fixed 0.95 flags everything);
* :func:`top_pairs` — the most similar (generated, training) pairs, to look at;
* :func:`plant_copies` — exact or mildly altered copies of training images planted among the
  samples: the search must find every one, with the right training index.

References
----------
.. [1] M. U. Akbar, W. Wang, A. Eklund, "Beware of diffusion models for synthesizing medical
   images — a comparison with GANs in terms of memorizing brain MRI and chest x-ray images",
   Mach. Learn.: Sci. Technol. (2025); arXiv:2305.07644.
.. [2] G. Somepalli, V. Singla, M. Goldblum, J. Geiping, T. Goldstein, "Diffusion Art or Digital
   Forgery? Investigating Data Replication in Diffusion Models", CVPR 2023.
.. [3] N. Carlini, J. Hayes, M. Nasr et al., "Extracting Training Data from Diffusion Models",
   USENIX Security 2023.

Examples
--------
>>> import torch
>>> from helpers import memorization
>>> train = torch.rand(50, 1, 8, 8, generator=torch.Generator().manual_seed(0))
>>> values, indices = memorization.max_correlation(0.5 * train[[7, 3]] + 0.2, train)
>>> indices.tolist(), [round(v, 4) for v in values.tolist()]
([7, 3], [1.0, 1.0])
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from .metrics import binomial_interval, bootstrap_interval
from .nearest_neighbours import (
    ArrayLike,
    Matches,
    Measure,
    check_pair,
    search,
    standardize,
    tiles,
    unit_rows,
)

logger = logging.getLogger(__name__)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise dot products of prepared rows; the best over shifted copies when stacked."""
    d = (a * b).sum(-1)  # (P,) or (S, P)
    return d.amax(dim=0) if d.ndim == 2 else d


def top_k_correlation(
    generated: ArrayLike,
    training: ArrayLike,
    k: int = 5,
    *,
    max_shift: int = 0,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Matches:
    """The ``k`` training images most correlated with each generated image.

    Parameters
    ----------
    generated : Tensor or ndarray, shape ``(N, ...)``
        Generated images (any trailing shape, e.g. ``(N, C, H, W)``).
    training : Tensor or ndarray, shape ``(M, ...)``
        Training images of the same trailing shape.
    k : int
        How many matches per generated image.
    max_shift : int
        Also compare every circular shift (``torch.roll``) of the generated image by up to
        ``max_shift`` pixels in each direction and keep the best correlation per pair: a copy
        moved by a pixel or two is still found. Costs ``(2·max_shift + 1)²`` times more; needs
        ``(N, C, H, W)``.
    batch_size : int
        Rows per chunk: at most ``batch_size × batch_size`` similarities are held at once
        (times the number of shifts; shifted copies are made for one chunk of rows at a time).
    device : str or torch.device, optional
        Where the products run (default: the device of ``generated``).
    dtype : torch.dtype
        Precision of the products (float32 default; float64 for reference checks, not on MPS).

    Returns
    -------
    Matches
        ``values`` ``(N, k)`` Pearson correlations, best first; ``indices`` ``(N, k)`` int64.
        For ``k = 1`` the match and its value are those of a direct float64 computation, the
        lowest training index among exact ties. For ``k > 1`` values are the ``dtype`` products
        and exact ties of those go to the lowest training index.

    Examples
    --------
    >>> import torch
    >>> train = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    >>> top_k_correlation(train[[2]], train, 3).indices[0, 0].item()
    2
    """
    g, t = check_pair(generated, training)
    if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
    if max_shift and g.ndim != 4:
        raise ValueError(f"max_shift needs images (N, C, H, W), got shape {tuple(g.shape)}")

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return standardize(x.flatten(1))  # (n, D)

    def prepare_generated(x: torch.Tensor) -> torch.Tensor:
        z = prepare(x).reshape(x.shape)  # a shift only permutes pixels: standardise once
        shifts = range(-max_shift, max_shift + 1)
        rolled = [torch.roll(z, (dy, dx), dims=(-2, -1)) for dy in shifts for dx in shifts]
        return torch.stack(rolled).flatten(2)  # (S, n, D)

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T) if a.ndim == 2 else torch.matmul(a, b.T).amax(dim=0)  # (b, Tc)

    tol = 8 * g[0].numel() ** 0.5  # rounding of unit-vector products, in units of eps
    measure = Measure(prepare, score, _dot, tol, prepare_generated if max_shift else None)
    m = search(g, t, measure, k=k, batch_size=batch_size, device=device, dtype=dtype)
    return Matches(m.values.to(dtype), m.indices)


def max_correlation(
    generated: ArrayLike,
    training: ArrayLike,
    *,
    max_shift: int = 0,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Matches:
    """For each generated image, the highest Pearson correlation with any training image.

    Both sets are flattened and standardised row by row (mean 0, norm 1); the correlation of
    every pair is then one entry of the matrix product ``G Tᵀ``, computed chunk by chunk.

    Parameters
    ----------
    generated : Tensor or ndarray, shape ``(N, ...)``
        Generated images.
    training : Tensor or ndarray, shape ``(M, ...)``
        Training images, same trailing shape as ``generated``.
    max_shift, batch_size, device, dtype
        As in :func:`top_k_correlation`.

    Returns
    -------
    Matches
        ``values`` ``(N,)`` float: the maximum correlation in [-1, 1]; ``indices`` ``(N,)``
        int64: the training image that reaches it. Both as computed directly in float64 (the
        lowest index among exact ties), whatever ``dtype`` and ``batch_size``.

    References
    ----------
    Akbar, Wang, Eklund, Mach. Learn.: Sci. Technol. 2025 (arXiv:2305.07644): the correlation
    search of every synthetic image against every training image.

    Examples
    --------
    >>> import torch
    >>> train = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    >>> max_correlation(train[[5]] * 2 + 1, train).indices.tolist()
    [5]
    """
    m = top_k_correlation(generated, training, 1, max_shift=max_shift, batch_size=batch_size,
                          device=device, dtype=dtype)  # fmt: skip
    return Matches(m.values[:, 0], m.indices[:, 0])


def max_cosine(
    generated_features: ArrayLike,
    training_features: ArrayLike,
    *,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Matches:
    """For each generated feature vector, the highest cosine similarity with any training one.

    Parameters
    ----------
    generated_features : Tensor or ndarray, shape ``(N, D)``
        Features of the generated images (e.g. of a self-supervised encoder).
    training_features : Tensor or ndarray, shape ``(M, D)``
        Features of the training images.
    batch_size, device, dtype
        As in :func:`top_k_correlation`.

    Returns
    -------
    Matches
        ``values`` ``(N,)`` cosine similarities in [-1, 1]; ``indices`` ``(N,)`` int64. As in
        :func:`max_correlation`, re-scored in float64; the lowest index among exact ties.

    References
    ----------
    Somepalli et al., CVPR 2023: the share of generated images whose top-1 training match has a
    (SSCD or DINO) feature cosine above 0.5.

    Examples
    --------
    >>> import torch
    >>> f = torch.eye(3)
    >>> max_cosine(torch.tensor([[0.0, 2.0, 0.1]]), f).indices.tolist()
    [1]
    """
    g, t = check_pair(generated_features, training_features)
    flat = lambda x: unit_rows(x.flatten(1))  # noqa: E731
    measure = Measure(flat, lambda a, b: a @ b.T, _dot, 8 * g[0].numel() ** 0.5)
    m = search(g, t, measure, k=1, batch_size=batch_size, device=device, dtype=dtype)
    return Matches(m.values[:, 0].to(dtype), m.indices[:, 0])


def min_tiled_l2(
    generated: ArrayLike,
    training: ArrayLike,
    *,
    grid: int = 4,
    batch_size: int = 1024,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> Matches:
    """For each generated image, the training image at the smallest tiled ℓ2 distance.

    The distance between images ``a`` and ``b`` is ``max over tiles τ of
    sqrt(mean((a_τ − b_τ)²))`` on a ``grid × grid`` tile grid; each tile's squared distance is
    ``‖a_τ‖² + ‖b_τ‖² − 2 a_τ·b_τ``, so the search is again a set of matrix products.

    Parameters
    ----------
    generated : Tensor or ndarray, shape ``(N, C, H, W)``
        Generated images with values in [0, 1].
    training : Tensor or ndarray, shape ``(M, C, H, W)``
        Training images, same shape.
    grid : int
        Tiles per side (4 as in Carlini et al.; 1 gives the plain root-mean-square distance).
        ``H`` and ``W`` must be divisible by it.
    batch_size, device, dtype
        As in :func:`top_k_correlation`.

    Returns
    -------
    Matches
        ``values`` ``(N,)`` distances ≥ 0 (smaller = more similar); ``indices`` ``(N,)`` int64.
        As in :func:`max_correlation`, re-scored in float64 (an exact copy is at distance 0);
        the lowest index among exact ties.

    References
    ----------
    Carlini et al., USENIX Security 2023, Sec. 5 (CIFAR-10: ℓ2 over a 4×4 tile grid).

    Examples
    --------
    >>> import torch
    >>> train = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    >>> values, indices = min_tiled_l2(train[[4]], train)
    >>> indices.tolist(), round(float(values[0]), 3)
    ([4], 0.0)
    """
    g, t = check_pair(generated, training)
    if g.ndim != 4:
        raise ValueError(f"tiled ℓ2 needs images (N, C, H, W), got shape {tuple(g.shape)}")
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive int, got {grid!r}")
    h, w = g.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f"image size {h}×{w} is not divisible by the tile grid {grid}×{grid}")
    tile_dim = g.shape[1] * (h // grid) * (w // grid)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        cut = tiles(x, grid)  # (g², n, d)
        sq = (cut * cut).sum(-1, keepdim=True)  # (g², n, 1)
        return torch.cat([cut, sq], dim=-1)  # squared norms ride along as a last column

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        cross = torch.bmm(a[..., :-1], b[..., :-1].transpose(1, 2))  # (g², b, Tc)
        d2 = a[..., -1:] + b[..., -1].unsqueeze(1) - 2 * cross
        return -d2.amax(dim=0).clamp_min(0)  # higher is better: minus the worst tile

    def pair_score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        diff = a[..., :-1] - b[..., :-1]  # (g², P, d): the tiles, directly
        return -(diff * diff).sum(-1).amax(dim=0)

    peak = max(float(g.abs().max()), float(t.abs().max())) ** 2 * tile_dim  # largest ‖tile‖²
    measure = Measure(prepare, score, pair_score, 16 * tile_dim**0.5 * peak)
    m = search(g, t, measure, k=1, batch_size=batch_size, device=device, dtype=dtype)
    return Matches(torch.sqrt(-m.values[:, 0] / tile_dim).to(dtype), m.indices[:, 0])


def relative_l2(
    generated: ArrayLike,
    training: ArrayLike,
    *,
    n_neighbours: int = 50,
    batch_size: int = 256,
) -> Matches:
    """Carlini et al.'s relative distance: ℓ2 to the nearest training image over the mean ℓ2 to
    the ``n_neighbours`` nearest.

    A sample that copies one training image is far closer to it than to the next ones (ratio
    near 0); a new image sits among its neighbours (ratio near 1). Because the distance is
    measured relative to the local spread of the training set, the criterion still works where
    every image resembles every other (slices of one template). Carlini et al. flag a sample as
    extracted when the ratio is below α = 0.5, with 50 neighbours (CIFAR-10).

    Parameters
    ----------
    generated : Tensor or ndarray ``(N, …)``
        Generated images in ``[0, 1]``.
    training : Tensor or ndarray ``(M, …)``
        Training images, same trailing shape.
    n_neighbours : int
        Size of the neighbourhood (the nearest included); ``min(n_neighbours, M)`` are used.
    batch_size : int
        Generated images per block of distances (computed in float64).

    Returns
    -------
    Matches
        ``values`` ``(N,)`` ratios in ``[0, 1]`` (smaller = more copy-like); ``indices`` ``(N,)``
        the nearest training image (lowest index among exact ties).

    References
    ----------
    Carlini et al., USENIX Security 2023, Sec. 5.1: ℓ(x̂, x; S_x̂) = ℓ2(x̂, x) / E_{y∈S_x̂} ℓ2(x̂, y)
    with S_x̂ the 50 nearest training images, flagged below α = 0.5.

    Examples
    --------
    >>> import torch
    >>> train = torch.rand(60, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> m = relative_l2(torch.cat([train[[3]], torch.rand(1, 1, 8, 8)]), train)
    >>> m.indices[0].item(), float(m.values[0]), bool(m.values[1] > 0.5)
    (3, 0.0, True)
    """
    g, t = check_pair(generated, training)
    if not isinstance(n_neighbours, int) or isinstance(n_neighbours, bool) or n_neighbours < 1:
        raise ValueError(f"n_neighbours must be a positive int, got {n_neighbours!r}")
    k = min(n_neighbours, t.shape[0])
    tf = t.flatten(1).double()
    values, indices = [], []
    for start in range(0, g.shape[0], batch_size):
        d = torch.cdist(g[start : start + batch_size].flatten(1).double(), tf)  # (b, M)
        near = torch.sort(d, dim=1, stable=True)  # ties: lowest index first
        values.append(near.values[:, 0] / near.values[:, :k].mean(1).clamp_min(1e-12))
        indices.append(near.indices[:, 0])
    return Matches(torch.cat(values).float(), torch.cat(indices))


# --------------------------------------------------------------------------------------------
# what the best matches say


def _values(values: ArrayLike | Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(
            f"{name} holds {int((~np.isfinite(v)).sum())} NaN or Inf value(s) (e.g. at index "
            f"{int(np.flatnonzero(~np.isfinite(v))[0])}); a best match must be a number"
        )
    return v


def memorization_rate(
    values: ArrayLike | Sequence[float], threshold: float | Sequence[float], *, above: bool = True
) -> float | np.ndarray:
    """Share of generated images whose best match passes ``threshold``.

    Parameters
    ----------
    values : array-like, shape ``(N,)``
        Best-match similarities (or distances, with ``above=False``).
    threshold : float or sequence of float
        One threshold, or several (then one rate per threshold).
    above : bool
        Count ``values >= threshold`` (similarities, default) or ``values <= threshold``
        (distances).

    Returns
    -------
    float or ndarray
        Rate(s) in [0, 1].

    Examples
    --------
    >>> memorization_rate([0.99, 0.97, 0.5, 0.96], 0.95)
    0.75
    >>> memorization_rate([0.99, 0.97, 0.5, 0.96], [0.95, 0.98]).tolist()
    [0.75, 0.25]
    """
    v = _values(values, "values")
    th = np.asarray(threshold, dtype=np.float64)
    if th.ndim > 1 or th.size == 0 or not np.isfinite(th).all():
        raise ValueError(f"threshold must be a number or a 1-D list of numbers, got {threshold!r}")
    hits = v[:, None] >= th.reshape(1, -1) if above else v[:, None] <= th.reshape(1, -1)
    rates = hits.mean(axis=0)
    return float(rates[0]) if th.ndim == 0 else rates


def rate_interval(
    values: ArrayLike | Sequence[float],
    threshold: float | None = None,
    *,
    held_out_values: ArrayLike | Sequence[float] | None = None,
    quantile: float = 0.99,
    above: bool = True,
    level: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Bootstrap confidence interval of a memorization rate.

    With a fixed ``threshold`` only the generated images are resampled. With
    ``held_out_values`` the threshold is calibrated again on every resample of the held-out
    images too (:func:`calibrated_threshold` at ``quantile``), so the interval also covers how
    uncertain the threshold itself is — usually the larger part on a few hundred images.

    The interval is widened, where needed, to contain the exact binomial interval of the count
    at the (calibrated) threshold (:func:`helpers.metrics.binomial_interval`): a bootstrap of 0
    near-copies among ``N`` is the point ``[0, 0]``, which no sample size justifies.

    Parameters
    ----------
    values : array-like ``(N,)``
        Best-match values of the generated images.
    threshold : float, optional
        A fixed threshold (give this or ``held_out_values``).
    held_out_values : array-like ``(M,)``, optional
        Best-match values of held-out real images, to calibrate the threshold from.
    quantile, above : float, bool
        As in :func:`calibrated_threshold` and :func:`memorization_rate`.
    level, n_boot, seed
        As in :func:`helpers.metrics.bootstrap_interval`.

    Returns
    -------
    (low, high) : tuple of float

    Examples
    --------
    >>> v = np.r_[np.full(10, 0.99), np.full(90, 0.5)]  # 10 % of 100 samples are near-copies
    >>> lo, hi = rate_interval(v, 0.95)
    >>> 0.03 < lo < 0.1 < hi < 0.18
    True
    """
    v = _values(values, "values")
    if (threshold is None) == (held_out_values is None):
        raise ValueError("give either a fixed threshold or held_out_values to calibrate one from")
    if threshold is not None:
        lo, hi = bootstrap_interval(
            lambda x: memorization_rate(x, threshold, above=above), v, n_boot=n_boot,
            level=level, seed=seed,
        )  # fmt: skip
        point = memorization_rate(v, threshold, above=above)
    else:
        h = _values(held_out_values, "held_out_values")

        def rate(x: np.ndarray, held: np.ndarray) -> float:
            return memorization_rate(
                x, calibrated_threshold(held, quantile, above=above), above=above
            )

        # generated and held-out images resampled each within its own set (a stratified bootstrap)
        which = np.r_[np.zeros(len(v)), np.ones(len(h))]
        lo, hi = bootstrap_interval(
            lambda x, w: rate(x[w == 0], x[w == 1]), np.r_[v, h], which, strata=which,
            n_boot=n_boot, level=level, seed=seed,
        )  # fmt: skip
        point = rate(v, h)
    exact_lo, exact_hi = binomial_interval(int(round(point * len(v))), len(v), level)
    return min(lo, exact_lo), max(hi, exact_hi)


def calibrated_threshold(
    held_out_values: ArrayLike | Sequence[float], quantile: float = 0.99, *, above: bool = True
) -> float:
    """A copy threshold read off the best matches of real images that were not trained on.

    A real image that the model never saw is by definition not a copy, yet on data whose images
    all look alike (brain slices of one template) its nearest training image can be very close.
    Flag a generated image only when it is closer to the training set than the ``quantile`` of
    such held-out images: then at most ``1 − quantile`` of genuinely new images are flagged.

    Parameters
    ----------
    held_out_values : array-like, shape ``(N,)``
        Best-match similarity (or distance, with ``above=False``) of each held-out real image
        against the training set, searched the same way as the generated images.
    quantile : float
        In ``(0, 1)``: 0.99 flags 1 % of held-out images.
    above : bool
        Similarities (default: the ``quantile``-th quantile) or distances (the
        ``1 − quantile``-th quantile, since smaller means closer).

    Returns
    -------
    float
        The threshold to pass to :func:`memorization_rate` with the same ``above``.

    Examples
    --------
    >>> calibrated_threshold([0.90, 0.92, 0.94, 0.96, 0.98], 0.5)
    0.94
    >>> calibrated_threshold([0.3, 0.1, 0.2], 0.5, above=False)
    0.2
    """
    v = _values(held_out_values, "held_out_values")
    if not isinstance(quantile, float | int) or not 0 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0, 1), got {quantile!r}")
    return float(np.quantile(v, quantile if above else 1 - quantile))


def top_pairs(
    matches: Matches, k: int = 8, *, largest: bool = True
) -> list[tuple[int, int, float]]:
    """The ``k`` most similar (generated, training) pairs, most similar first.

    Parameters
    ----------
    matches : Matches
        Output of :func:`max_correlation`, :func:`max_cosine` (``largest=True``) or
        :func:`min_tiled_l2` (``largest=False``).
    k : int
        Number of pairs, ``k ≥ 0``; a ``k`` above the number of generated images gives all.
    largest : bool
        Whether larger values mean more similar.

    Returns
    -------
    list of (generated_index, training_index, value)

    Raises
    ------
    TypeError, ValueError
        If ``k`` is not an int, or is negative.

    Examples
    --------
    >>> import torch
    >>> top_pairs(Matches(torch.tensor([0.2, 0.9, 0.5]), torch.tensor([4, 0, 7])), 2)
    [(1, 0, 0.9), (2, 7, 0.5)]
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise TypeError(f"k must be an int ≥ 0 (the number of pairs), got {type(k).__name__} {k!r}")
    if k < 0:
        raise ValueError(f"k must be an int ≥ 0 (the number of pairs), got {k}")
    values = matches.values.reshape(matches.values.shape[0], -1)[:, 0].double()
    indices = matches.indices.reshape(matches.indices.shape[0], -1)[:, 0]
    k = min(int(k), values.shape[0])
    order = torch.sort(values, descending=largest, stable=True).indices[:k]
    return [(int(i), int(indices[i]), round(float(values[i]), 6)) for i in order]


def plant_copies(
    samples: torch.Tensor,
    training: torch.Tensor,
    n_copies: int,
    *,
    noise_std: float = 0.0,
    max_shift: int = 0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace ``n_copies`` random samples by (mildly altered) copies of random training images.

    A sanity check for any memorization search: it must find every planted copy, with the
    right training index.

    Parameters
    ----------
    samples : Tensor ``(N, C, H, W)``
        Generated images (values in [0, 1]); not modified.
    training : Tensor ``(M, C, H, W)``
        Training images, same shape.
    n_copies : int
        How many samples to replace (``0 ≤ n_copies ≤ N``); sources are distinct if ``≤ M``.
    noise_std : float
        Standard deviation of Gaussian noise added to each copy (result clipped to [0, 1]).
    max_shift : int
        Each copy is circularly shifted by a random ``(dy, dx)`` in ``[-max_shift, max_shift]²``.
    generator : torch.Generator, optional
        Source of randomness (CPU).

    Returns
    -------
    images : Tensor ``(N, C, H, W)``
        The samples with the copies planted.
    positions : Tensor ``(n_copies,)`` int64
        Where in ``images`` the copies are.
    sources : Tensor ``(n_copies,)`` int64
        Which training image each copy comes from.

    Examples
    --------
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> train, fake = torch.rand(20, 1, 8, 8, generator=g), torch.rand(10, 1, 8, 8, generator=g)
    >>> images, pos, src = plant_copies(fake, train, 3, generator=g)
    >>> bool((images[pos] == train[src]).all())
    True
    """
    s, t = check_pair(samples, training)
    if s.ndim != 4:
        raise ValueError(f"samples must be images (N, C, H, W), got shape {tuple(s.shape)}")
    if not isinstance(n_copies, int) or not 0 <= n_copies <= s.shape[0]:
        raise ValueError(f"n_copies must be an int in [0, {s.shape[0]}], got {n_copies!r}")
    if not noise_std >= 0 or not max_shift >= 0:  # NaN too
        raise ValueError(f"noise_std and max_shift must be ≥ 0, got {noise_std}, {max_shift}")
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    positions = torch.randperm(s.shape[0], generator=gen)[:n_copies]
    if n_copies <= t.shape[0]:
        sources = torch.randperm(t.shape[0], generator=gen)[:n_copies]
    else:
        sources = torch.randint(t.shape[0], (n_copies,), generator=gen)
    out = s.detach().cpu().clone()
    for pos, src in zip(positions.tolist(), sources.tolist(), strict=True):
        copy = t[src].detach().cpu().float()
        if max_shift:
            dy, dx = torch.randint(-max_shift, max_shift + 1, (2,), generator=gen).tolist()
            copy = torch.roll(copy, (dy, dx), dims=(-2, -1))
        if noise_std:
            copy = (copy + noise_std * torch.randn(copy.shape, generator=gen)).clamp(0, 1)
        out[pos] = copy.to(out.dtype)
    return out, positions, sources
