"""Nearest-training-image search: does a generative model hand back copies of its training set?

For every generated image we look for the most similar training image under one of three
measures, each computed as chunked matrix products so that memory stays bounded (one block of
``batch_size × batch_size`` similarities at a time) and the search runs on CPU, CUDA or MPS:

* Pearson correlation of the flattened pixels (Akbar et al.): rows are standardised (mean 0,
  norm 1), so one matrix product gives every correlation. Invariant to brightness and contrast.
* cosine similarity of feature vectors, e.g. of a self-supervised encoder (Somepalli et al.).
* tiled ℓ2 distance (Carlini et al.): the image is cut into a ``grid × grid`` tile grid, the
  root-mean-square distance is measured per tile and the largest tile distance counts, so two
  images are close only when *every* tile is close.

What to make of the best matches — rates above a threshold, a threshold calibrated on held-out
real images, the closest pairs, planted copies as a sanity check — is in
:mod:`helpers.memorization_report`; its functions are reachable from here too
(``from helpers.memorization import memorization_rate, plant_copies``).

References
----------
.. [1] S. U. Akbar, W. Wang, A. Eklund et al., "Beware of diffusion models for synthesizing
   medical images — a comparison with GANs in terms of memorizing brain tumor images",
   arXiv:2305.07644 (2023); Mach. Learn.: Sci. Technol. (2025).
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
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

logger = logging.getLogger(__name__)

ArrayLike = torch.Tensor | np.ndarray


class Matches(NamedTuple):
    """Best training match(es) of each generated image.

    Attributes
    ----------
    values : torch.Tensor
        ``(N,)`` (or ``(N, k)`` for :func:`top_k_correlation`) similarities or distances, best first.
    indices : torch.Tensor
        Same shape, int64: the index of the matching training image.
    """

    values: torch.Tensor
    indices: torch.Tensor


def _as_tensor(x: ArrayLike, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (N, ...) with N ≥ 1, got {tuple(x.shape)}")
    return x


def _check_pair(generated: ArrayLike, training: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    g, t = _as_tensor(generated, "generated"), _as_tensor(training, "training")
    if g.shape[1:] != t.shape[1:]:
        shape = lambda x: "×".join(map(str, x.shape[1:]))  # noqa: E731
        raise ValueError(
            f"generated images are {shape(g)} but training images are {shape(t)}; "
            "resize one set to the other's size"
        )
    return g, t


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (N, D) with mean 0 and Euclidean norm 1, so that ``a @ b.T`` is Pearson's r.

    A constant row (variance below rounding noise) becomes all zeros: its correlation with
    anything is 0.
    """
    mean = x.mean(dim=1, keepdim=True)
    centred = x - mean
    norm = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
    scale = torch.sqrt(norm * norm + x.shape[1] * mean * mean)  # ‖x‖, without another pass
    ok = norm > 4 * torch.finfo(x.dtype).eps * x.shape[1] ** 0.5 * scale
    return centred.mul_(torch.where(ok, norm.reciprocal(), torch.zeros_like(norm)))


def _unit(x: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    return x * torch.where(norm > 0, norm.reciprocal(), torch.zeros_like(norm))


def _tiles(x: torch.Tensor, grid: int) -> torch.Tensor:
    """``(N, C, H, W)`` → ``(grid², N, C·H/grid·W/grid)``: the images cut into a tile grid."""
    n, c, h, w = x.shape
    th, tw = h // grid, w // grid
    t = x.reshape(n, c, grid, th, grid, tw).permute(2, 4, 0, 1, 3, 5)  # (g, g, N, C, th, tw)
    return t.reshape(grid * grid, n, c * th * tw)


def _search(
    generated: torch.Tensor,
    training: torch.Tensor,
    prepare: Callable[[torch.Tensor], torch.Tensor],
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    k: int,
    batch_size: int,
    device: str | torch.device | None,
    dtype: torch.dtype,
    tol: float = 0.0,
    prepare_generated: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Matches:
    """Top-``k`` of ``score(prepare(g), prepare(t))`` (higher is better) over training chunks.

    For ``k = 1``, scores within ``tol`` (the rounding error of the products) count as ties and
    the lowest training index wins: identical training images give the same answer whatever
    the chunking. Training chunks are visited in index order and a later chunk replaces the
    best match only when it beats it by more than ``tol``.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not isinstance(k, int) or not 1 <= k <= training.shape[0]:
        raise ValueError(f"k must be an int in [1, {training.shape[0]}] (training size), got {k!r}")
    dev = torch.device(device) if device is not None else generated.device
    g = (prepare_generated or prepare)(generated.to(dev, dtype))  # (..., N, D')
    n = generated.shape[0]
    best = torch.full((n, k), -torch.inf, device=dev, dtype=dtype)
    best_idx = torch.zeros((n, k), device=dev, dtype=torch.long)
    for start in range(0, training.shape[0], batch_size):
        t = prepare(training[start : start + batch_size].to(dev, dtype))
        for gs in range(0, n, batch_size):
            rows = slice(gs, gs + batch_size)
            s = score(g[..., rows, :], t)  # (b, Tc)
            if k == 1:
                value = s.amax(dim=1, keepdim=True)
                arg = (s >= value - tol).byte().argmax(dim=1, keepdim=True)  # first near-max
                better = value > best[rows] + tol
                best[rows] = torch.where(better, s.gather(1, arg), best[rows])
                best_idx[rows] = torch.where(better, arg + start, best_idx[rows])
            else:  # stable sort keeps the earlier (lower-index) candidate first on ties
                idx = torch.arange(start, start + s.shape[1], device=dev).expand_as(s)
                vals = torch.cat([best[rows], s], dim=1)
                inds = torch.cat([best_idx[rows], idx], dim=1)
                order = torch.sort(vals, dim=1, descending=True, stable=True).indices[:, :k]
                best[rows] = vals.gather(1, order)
                best_idx[rows] = inds.gather(1, order)
    return Matches(best.cpu(), best_idx.cpu())


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
        (times the number of shifts).
    device : str or torch.device, optional
        Where the products run (default: the device of ``generated``).
    dtype : torch.dtype
        Precision of the products (float32 default; float64 for reference checks, not on MPS).

    Returns
    -------
    Matches
        ``values`` ``(N, k)`` Pearson correlations, best first; ``indices`` ``(N, k)`` int64.
        Ties go to the lowest training index (for ``k > 1`` only exact ties; for ``k = 1`` also
        scores equal up to float rounding).

    Examples
    --------
    >>> import torch
    >>> train = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    >>> top_k_correlation(train[[2]], train, 3).indices[0, 0].item()
    2
    """
    g, t = _check_pair(generated, training)
    if not isinstance(max_shift, int) or isinstance(max_shift, bool) or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative int, got {max_shift!r}")
    if max_shift and g.ndim != 4:
        raise ValueError(f"max_shift needs images (N, C, H, W), got shape {tuple(g.shape)}")

    def prepare(x: torch.Tensor) -> torch.Tensor:
        return standardize(x.flatten(1))  # (n, D)

    def prepare_generated(x: torch.Tensor) -> torch.Tensor:
        shifts = range(-max_shift, max_shift + 1)
        rolled = [torch.roll(x, (dy, dx), dims=(-2, -1)) for dy in shifts for dx in shifts]
        return torch.stack([prepare(r) for r in rolled])  # (S, n, D)

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a @ b.T) if a.ndim == 2 else torch.matmul(a, b.T).amax(dim=0)  # (b, Tc)

    tol = 8 * torch.finfo(dtype).eps * g[0].numel() ** 0.5  # rounding of unit-vector products
    return _search(g, t, prepare, score, k=k, batch_size=batch_size, device=device, dtype=dtype,
                   tol=tol, prepare_generated=prepare_generated if max_shift else None)  # fmt: skip


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
        int64: the training image that reaches it (lowest index on ties, up to float rounding).

    References
    ----------
    Akbar, Wang, Eklund et al., arXiv:2305.07644 (the correlation search of their Fig. 2–5).

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
        ``values`` ``(N,)`` cosine similarities in [-1, 1]; ``indices`` ``(N,)`` int64.

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
    g, t = _check_pair(generated_features, training_features)
    flat = lambda x: _unit(x.flatten(1))  # noqa: E731
    tol = 8 * torch.finfo(dtype).eps * g[0].numel() ** 0.5
    m = _search(g, t, flat, lambda a, b: a @ b.T, k=1, batch_size=batch_size, device=device,
                dtype=dtype, tol=tol)  # fmt: skip
    return Matches(m.values[:, 0], m.indices[:, 0])


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
    g, t = _check_pair(generated, training)
    if g.ndim != 4:
        raise ValueError(f"tiled ℓ2 needs images (N, C, H, W), got shape {tuple(g.shape)}")
    if not isinstance(grid, int) or grid < 1:
        raise ValueError(f"grid must be a positive int, got {grid!r}")
    h, w = g.shape[-2:]
    if h % grid or w % grid:
        raise ValueError(f"image size {h}×{w} is not divisible by the tile grid {grid}×{grid}")
    tile_dim = g.shape[1] * (h // grid) * (w // grid)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        tiles = _tiles(x, grid)  # (g², n, d)
        sq = (tiles * tiles).sum(-1, keepdim=True)  # (g², n, 1)
        return torch.cat([tiles, sq], dim=-1)  # squared norms ride along as a last column

    def score(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        cross = torch.bmm(a[..., :-1], b[..., :-1].transpose(1, 2))  # (g², b, Tc)
        d2 = a[..., -1:] + b[..., -1].unsqueeze(1) - 2 * cross
        return -d2.amax(dim=0).clamp_min(0)  # higher is better: minus the worst tile

    peak = max(float(g.abs().max()), float(t.abs().max())) ** 2 * tile_dim  # largest ‖tile‖²
    tol = 16 * torch.finfo(dtype).eps * tile_dim**0.5 * peak
    m = _search(g, t, prepare, score, k=1, batch_size=batch_size, device=device, dtype=dtype,
                tol=tol)  # fmt: skip
    return Matches(torch.sqrt(-m.values[:, 0] / tile_dim), m.indices[:, 0])


_REPORT = ("calibrated_threshold", "memorization_rate", "plant_copies", "top_pairs")


def __getattr__(name: str):
    """Rates, thresholds, top pairs and planted copies live in :mod:`helpers.memorization_report`."""
    if name in _REPORT:
        from . import memorization_report

        return getattr(memorization_report, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
