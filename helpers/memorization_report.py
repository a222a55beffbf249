"""What the nearest-training-image search says: rates, calibrated thresholds, top pairs, checks.

:mod:`helpers.memorization` finds, for every generated image, its best training match. This
module turns those best matches into the numbers and pictures of a memorization analysis:

* :func:`memorization_rate` — the share of generated images whose best match passes a threshold;
* :func:`calibrated_threshold` — a threshold read off real images that were *not* trained on
  (by definition not copies): at the 99th percentile of their best-match similarity, at most
  1 % of genuinely new images are flagged. Needed where all images look alike (brain slices
  correlate above 0.95 with their nearest neighbour anyway, so a fixed 0.95 flags everything);
* :func:`top_pairs` — the most similar (generated, training) pairs, to look at;
* :func:`plant_copies` — exact or mildly altered copies of training images planted among the
  samples: the search must find every one, with the right training index.

The functions are also reachable as ``helpers.memorization.<name>``.

References
----------
.. [1] S. U. Akbar, W. Wang, A. Eklund et al., "Beware of diffusion models for synthesizing
   medical images — a comparison with GANs in terms of memorizing brain tumor images",
   arXiv:2305.07644 (2023); Mach. Learn.: Sci. Technol. (2025).
.. [2] N. Carlini, J. Hayes, M. Nasr et al., "Extracting Training Data from Diffusion Models",
   USENIX Security 2023.

Examples
--------
>>> from helpers import memorization_report as R
>>> threshold = R.calibrated_threshold([0.90, 0.95, 0.97], 0.5)  # the held-out median
>>> threshold, R.memorization_rate([0.99, 0.97, 0.5, 0.96], threshold)
(0.95, 0.75)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from .memorization_search import ArrayLike, _check_pair

if TYPE_CHECKING:
    from .memorization_search import Matches

__all__ = ["calibrated_threshold", "memorization_rate", "plant_copies", "top_pairs"]


def _values(values: ArrayLike | Sequence[float], name: str) -> np.ndarray:
    v = np.asarray(values.cpu() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {v.shape}")
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
    hits = v[:, None] >= th.reshape(1, -1) if above else v[:, None] <= th.reshape(1, -1)
    rates = hits.mean(axis=0)
    return float(rates[0]) if th.ndim == 0 else rates


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
    >>> from helpers.memorization import Matches
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
    s, t = _check_pair(samples, training)
    if s.ndim != 4:
        raise ValueError(f"samples must be images (N, C, H, W), got shape {tuple(s.shape)}")
    if not isinstance(n_copies, int) or not 0 <= n_copies <= s.shape[0]:
        raise ValueError(f"n_copies must be an int in [0, {s.shape[0]}], got {n_copies!r}")
    if noise_std < 0 or max_shift < 0:
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
