"""Image-quality and evaluation metrics: PSNR and SSIM, Fréchet distance on features, AUROC,
bootstrap intervals, colour histograms, whether samples follow their references, and how many
directions a set of features really uses.

PSNR is ``10 log10(range² / MSE)`` (:func:`mse_to_psnr` is the formula, :func:`psnr` measures
it on images, arguments ordered ``(reference, image)`` as in scikit-image, whose
``peak_signal_noise_ratio`` it equals); SSIM wraps scikit-image for tensors and batches. The
Fréchet distance is the formula behind FID, on any feature vectors; the matrix square root is
taken through symmetric eigen-decompositions, which stay real and accurate where a general
``sqrtm`` returns complex noise for nearly singular covariances. AUROC is the Mann–Whitney rank
formula and equals scikit-learn's ``roc_auc_score``, ties included. :func:`bootstrap_interval`
gives a percentile-bootstrap interval for any of them (or for a rate such as an accuracy), paired
or stratified. :func:`follows_reference` checks on images (colour histograms, embeddings) whether
generated variations stay closer to their own reference than to the others, measured against two
real crops of the same tissue; a model that ignores its condition scores 0.
:func:`participation_ratio` counts the directions a set of features spreads over (a collapsed
encoder uses few).

References
----------
.. [1] M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter, "GANs Trained by a Two
   Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).
.. [2] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
   error visibility to structural similarity", IEEE TIP 13(4), 2004 (SSIM).
.. [3] J. A. Hanley, B. J. McNeil, "The meaning and use of the area under a receiver operating
   characteristic (ROC) curve", Radiology 143(1), 1982.
.. [4] B. Efron, R. Tibshirani, "An Introduction to the Bootstrap", Chapman & Hall, 1993.
.. [5] P. Gao, E. Trautmann, B. Yu et al., "A theory of multineuronal dimensionality, dynamics and
   measurement", bioRxiv 2017 (participation ratio).

Examples
--------
>>> import numpy as np
>>> from helpers import metrics
>>> round(metrics.psnr(np.zeros((8, 8)), np.full((8, 8), 0.1)), 6)
20.0
>>> metrics.auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
0.75
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

from .validation import check_finite, check_int, check_number

ArrayLike = torch.Tensor | np.ndarray


def _numpy(x: ArrayLike | list, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    if np.iscomplexobj(x):
        raise TypeError(f"{name} must hold real numbers, got complex values")
    try:
        out = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be an array or tensor of numbers, got {type(x).__name__}"
        ) from err
    check_finite(out, name)
    return out


def _raw(x: ArrayLike, name: str) -> np.ndarray:
    """An image as an array of its own dtype, ``(C, H, W)`` for a PIL image (which is ``H, W, C``)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        Image = None
    if Image is not None and isinstance(x, Image.Image):
        a = np.asarray(x)
        return np.moveaxis(a, -1, 0) if a.ndim == 3 else a
    a = np.asarray(x)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array, tensor or PIL image of numbers, got {a.dtype}")
    return a


def _peak(ref: np.ndarray, img: np.ndarray) -> np.ndarray:
    """The data range of each reference image from its dtype, as scikit-image's
    ``peak_signal_noise_ratio`` takes it: the dtype's maximum when the image has no negative
    values, else maximum − minimum (integers: ``iinfo``; floats: ``[-1, 1]``, so 1 for images in
    ``[0, 1]``); shape ``(N,)``."""
    if ref.dtype.kind != img.dtype.kind and {ref.dtype.kind, img.dtype.kind} != {"i", "u"}:
        raise TypeError(
            f"reference has dtype {ref.dtype} but image has {img.dtype}: the peak value follows "
            "the dtype (255 for uint8, 1 for floats), so convert one to the other's range, or "
            "pass data_range"
        )
    flat = ref.reshape(len(ref), -1)
    if ref.dtype.kind == "b":
        return np.ones(len(ref))
    if ref.dtype.kind in "iu":
        info = np.iinfo(ref.dtype)
        low, high = float(info.min), float(info.max)
    else:
        low, high = -1.0, 1.0
        if flat.size and (flat.min() < low or flat.max() > high):
            raise ValueError(
                f"float reference images must lie in [-1, 1] for the peak to follow from the "
                f"dtype, got values from {flat.min():.4g} to {flat.max():.4g}; pass data_range"
            )
    return (
        np.where(flat.min(axis=1) >= 0, high, high - low) if flat.size else np.full(len(ref), high)
    )


def _image_pairs(
    reference: ArrayLike, image: ArrayLike, data_range: float | None
) -> tuple[np.ndarray, np.ndarray, bool, np.ndarray]:
    """Both as ``(N, C, H, W)`` float64 arrays, whether the input was a batch, and the data
    range of each pair ``(N,)`` (``data_range``, or from the dtype)."""
    raw_ref, raw_img = _raw(reference, "reference"), _raw(image, "image")
    ref, img = _numpy(raw_ref, "reference"), _numpy(raw_img, "image")
    if ref.shape != img.shape:
        raise ValueError(f"reference has shape {ref.shape} but image has shape {img.shape}")
    if ref.ndim not in (2, 3, 4):
        raise ValueError(
            f"expected (H, W), (C, H, W) or (N, C, H, W) images, got shape {ref.shape}"
        )
    batch = ref.ndim == 4
    if not batch:  # one image: (1, C, H, W), and a batch axis for the raw arrays
        lead = (None,) * (4 - ref.ndim)
        ref, img, raw_ref, raw_img = ref[lead], img[lead], raw_ref[None], raw_img[None]
    if ref.size == 0:
        raise ValueError(f"the images are empty (shape {ref.shape})")
    if data_range is None:
        peak = _peak(raw_ref, raw_img)
    else:
        peak = np.full(len(ref), check_number(data_range, "data_range", low=0, low_open=True))
    return ref, img, batch, peak


def mse_to_psnr(mse, data_range: float = 1.0):
    """PSNR in dB from a mean squared error: ``10 log10(data_range² / mse)``.

    Works on a float, a NumPy array or a tensor (returned as the same kind; a 0-d tensor stays on
    its device, so a training loop can log PSNR without synchronising). ``mse = 0`` gives ``inf``.

    Examples
    --------
    >>> mse_to_psnr(0.01), mse_to_psnr(0.0)
    (20.0, inf)
    """
    if isinstance(mse, torch.Tensor):
        return 10.0 * torch.log10(data_range**2 / mse)
    if isinstance(mse, np.ndarray):
        with np.errstate(divide="ignore"):
            return 10.0 * np.log10(data_range**2 / mse)
    if not mse >= 0:  # NaN too
        raise ValueError(f"mse must be a number ≥ 0, got {mse!r}")
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def psnr(
    reference: ArrayLike, image: ArrayLike, *, data_range: float | None = None
) -> float | np.ndarray:
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB.

    Parameters
    ----------
    reference, image : Tensor, ndarray or PIL image
        ``(H, W)``, ``(C, H, W)`` or a batch ``(N, C, H, W)``, same shape and kind of dtype
        (a PIL image is read as ``(C, H, W)``); no NaN or Inf.
    data_range : float, optional
        Maximum minus minimum possible value. Default, as scikit-image: from the reference's
        dtype: 255 for ``uint8`` (65535 for ``uint16`` …), 1 for floats in ``[0, 1]``, 2 for
        floats with negative values in ``[-1, 1]`` (others must pass it).

    Returns
    -------
    float, or ndarray ``(N,)`` for a batch
        ``inf`` for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.01)), 3)
    40.0
    """
    ref, img, batch, peak = _image_pairs(reference, image, data_range)
    mse = ((ref - img) ** 2).reshape(len(ref), -1).mean(axis=1)  # (N,) in float64
    out = mse_to_psnr(mse, peak)
    return out if batch else float(out[0])


def ssim(
    reference: ArrayLike, image: ArrayLike, *, data_range: float | None = None, **options
) -> float | np.ndarray:
    """Structural similarity (Wang et al. 2004), scikit-image's implementation.

    Parameters
    ----------
    reference, image : Tensor, ndarray or PIL image
        ``(H, W)``, ``(C, H, W)`` or a batch ``(N, C, H, W)``, same shape; channels are averaged.
    data_range : float, optional
        Maximum minus minimum possible value; default from the dtype, as :func:`psnr` (255 for
        ``uint8``, 1 for floats in ``[0, 1]``).
    **options
        Passed to ``skimage.metrics.structural_similarity`` (e.g. ``win_size``,
        ``gaussian_weights=True``).

    Returns
    -------
    float, or ndarray ``(N,)`` for a batch
        1 for identical images.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).random((16, 16))
    >>> ssim(x, x)
    1.0
    """
    ref, img, batch, peak = _image_pairs(reference, image, data_range)
    if min(ref.shape[-2:]) < options.get("win_size", 7):
        raise ValueError(
            f"SSIM needs images of at least win_size={options.get('win_size', 7)} pixels per "
            f"side, got {ref.shape[-2]}×{ref.shape[-1]}; pass a smaller odd win_size"
        )
    out = np.array(
        [
            structural_similarity(r, i, data_range=p, channel_axis=0, **options)
            for r, i, p in zip(ref, img, peak, strict=True)
        ]
    )
    return out if batch else float(out[0])


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, as in FID) of ``(N, D)`` features."""
    f = _numpy(features, "features")
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape (N, D) with N ≥ 2, got {f.shape}")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a positive semi-definite matrix (negative eigenvalues → 0)."""
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_statistics(
    mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray, sigma_b: np.ndarray
) -> float:
    """``‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})`` for two Gaussians.

    ``Tr((Σ_a Σ_b)^{1/2})`` is computed as ``Σ sqrt(eig(Σ_a^{1/2} Σ_b Σ_a^{1/2}))``: the product
    ``Σ_a^{1/2} Σ_b Σ_a^{1/2}`` is symmetric positive semi-definite and similar to ``Σ_a Σ_b``,
    so its eigenvalues are real, non-negative and those of ``Σ_a Σ_b``.
    """
    mu_a, mu_b = np.atleast_1d(mu_a), np.atleast_1d(mu_b)
    sigma_a, sigma_b = np.atleast_2d(sigma_a), np.atleast_2d(sigma_b)
    for name, v in (("mu_a", mu_a), ("mu_b", mu_b), ("sigma_a", sigma_a), ("sigma_b", sigma_b)):
        check_finite(np.asarray(v, dtype=np.float64), name)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(
            f"feature dimensions differ: means {mu_a.shape} vs {mu_b.shape}, "
            f"covariances {sigma_a.shape} vs {sigma_b.shape}"
        )
    root_a = _psd_sqrt(sigma_a)
    middle = root_a @ sigma_b @ root_a
    eig = np.linalg.eigvalsh((middle + middle.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = mu_a - mu_b
    value = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_covmean
    return float(max(value, 0.0))


def frechet_distance(feats_a: ArrayLike, feats_b: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (FID on any encoder).

    Parameters
    ----------
    feats_a : Tensor or ndarray, shape ``(N_a, D)``
        Features of the first set (e.g. real images).
    feats_b : Tensor or ndarray, shape ``(N_b, D)``
        Features of the second set (e.g. generated images).

    Returns
    -------
    float
        ``‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})`` ≥ 0; FID when the features are
        Inception-v3 pool features.

    References
    ----------
    Heusel et al., NeurIPS 2017. It compares distributions only: a model that returns copies
    of its training set scores as well as (or better than) one that generalises.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(500, 3))
    >>> round(frechet_distance(a, a), 9), round(frechet_distance(a, a + 1.0), 6)
    (0.0, 3.0)
    """
    mu_a, sigma_a = feature_statistics(feats_a)
    mu_b, sigma_b = feature_statistics(feats_b)
    return frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b)


def auroc(labels: ArrayLike | list, scores: ArrayLike | list) -> float:
    """Area under the ROC curve from the rank-sum (Mann–Whitney U) formula.

    ``AUC = (R₊ − n₊(n₊ + 1)/2) / (n₊ n₋)`` with ``R₊`` the sum of the (tie-averaged) ranks of the
    positive scores: the probability that a random positive scores above a random negative,
    ties counting one half. Equal to ``sklearn.metrics.roc_auc_score(labels, scores)``.

    Parameters
    ----------
    labels : array-like, shape ``(N,)``
        Binary labels (0/1 or False/True); both classes must occur.
    scores : array-like, shape ``(N,)``
        Higher score = more likely positive.

    Returns
    -------
    float
        In [0, 1]; 0.5 is chance.

    Examples
    --------
    >>> auroc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9])
    0.875
    """
    y, s = _numpy(labels, "labels").ravel(), _numpy(scores, "scores").ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels have {y.size} entries but scores have {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUROC needs both classes, got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binomial_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper–Pearson) confidence interval of a rate ``successes / trials``.

    Unlike a bootstrap, it does not collapse to a point when the count is 0 or ``trials``: with
    0 of ``n`` the upper end is ``1 − ((1 − level)/2)^(1/n)`` (≈ 3.7/n at 95 %; the "rule of
    three" is its one-sided version). Clopper & Pearson, Biometrika 26 (1934).

    Parameters
    ----------
    successes, trials : int
        ``0 ≤ successes ≤ trials``, ``trials ≥ 1``.
    level : float
        Coverage, in ``(0, 1)``.

    Returns
    -------
    (low, high) : tuple of float, in ``[0, 1]``

    Raises
    ------
    ValueError
        Counts out of range or ``level`` outside ``(0, 1)``.

    Examples
    --------
    >>> lo, hi = binomial_interval(0, 240)
    >>> lo, round(hi, 4)
    (0.0, 0.0153)
    >>> [round(x, 3) for x in binomial_interval(5, 10)]
    [0.187, 0.813]
    """
    from scipy.stats import beta

    check_int(trials, "trials", minimum=1)
    check_int(successes, "successes", minimum=0)
    if successes > trials:
        raise ValueError(f"successes must be at most trials={trials}, got {successes}")
    check_number(level, "level", low=0, high=1, low_open=True, high_open=True)
    a = (1 - level) / 2
    low = 0.0 if successes == 0 else float(beta.ppf(a, successes, trials - successes + 1))
    high = 1.0 if successes == trials else float(beta.ppf(1 - a, successes + 1, trials - successes))
    return low, high


def bootstrap_interval(
    statistic: Callable[..., float],
    *samples: ArrayLike | list,
    n_boot: int = 1000,
    level: float = 0.95,
    strata: ArrayLike | list | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(*samples)``.

    Each replicate draws ``N`` rows with replacement — the same rows from every array in
    ``samples``, so paired data stay paired — and evaluates ``statistic`` on them; the interval
    is the ``(1 − level)/2`` and ``(1 + level)/2`` quantiles of the replicates (Efron &
    Tibshirani 1993, ch. 13). With ``strata``, rows are drawn within each stratum, keeping its
    size (e.g. positives and negatives for :func:`auroc`, which needs both classes).

    Parameters
    ----------
    statistic : callable
        ``statistic(*arrays) -> float`` on NumPy arrays (e.g. ``np.mean``, :func:`auroc`).
    *samples : array-like, each of length ``N``
        The data, rows along the first axis.
    n_boot : int
        Number of bootstrap replicates.
    level : float
        Coverage of the interval, in ``(0, 1)``.
    strata : array-like ``(N,)``, optional
        A stratum label per row.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (low, high) : tuple of float

    Raises
    ------
    ValueError
        No samples, arrays of different lengths, an empty sample, ``n_boot < 1`` or ``level``
        outside ``(0, 1)``.

    Examples
    --------
    >>> correct = np.r_[np.ones(90), np.zeros(10)]         # 90 % right on 100 trials
    >>> lo, hi = bootstrap_interval(np.mean, correct)
    >>> 0.82 < lo < 0.9 < hi <= 0.97
    True
    >>> bootstrap_interval(np.mean, np.ones(20))            # no spread, no width
    (1.0, 1.0)
    >>> lo, hi = bootstrap_interval(np.mean, [1.0, 2.0, 3.0, 4.0])  # a mean over four images
    >>> lo < 2.5 < hi
    True
    """
    if not samples:
        raise ValueError("bootstrap_interval needs at least one sample array")
    arrays = [_numpy(s, f"sample {i}") for i, s in enumerate(samples)]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"samples must have equal lengths, got {[len(a) for a in arrays]}")
    if n == 0:
        raise ValueError("bootstrap_interval got empty samples (no rows to resample)")
    if n < 2:
        raise ValueError(f"bootstrap_interval needs at least 2 finite rows, got {n}")
    for i, a in enumerate(arrays):
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ValueError(f"sample {i} holds non-finite values: need at least 2 finite rows")
    if not isinstance(n_boot, int) or isinstance(n_boot, bool) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive int, got {n_boot!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    rng = np.random.default_rng(seed)
    if strata is None:
        groups = [np.arange(n)]
    else:
        labels = np.asarray(strata).ravel()
        if len(labels) != n:
            raise ValueError(f"strata have {len(labels)} entries but the samples have {n} rows")
        groups = [np.flatnonzero(labels == v) for v in np.unique(labels)]
    replicates = np.empty(n_boot)
    for b in range(n_boot):
        rows = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        replicates[b] = statistic(*(a[rows] for a in arrays))
    lo, hi = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def cosine_to_reference(
    samples: torch.Tensor, reference: torch.Tensor, others: torch.Tensor
) -> tuple[float, float]:
    """Mean cosine similarity of sample embeddings to their reference and to other patches.

    Parameters
    ----------
    samples : Tensor ``(R, S, D)``
        S sample embeddings for each of R references.
    reference : Tensor ``(R, D)``
    others : Tensor ``(M, D)``
        Embeddings of random other patches.

    Returns
    -------
    (mean cos to own reference, mean cos to the other patches); their difference is the gap.
    """
    if samples.ndim != 3 or reference.shape != (samples.shape[0], samples.shape[2]):
        raise ValueError(
            f"need samples (R, S, D) and reference (R, D), got {tuple(samples.shape)} and {tuple(reference.shape)}"
        )
    if others.ndim != 2 or others.shape[1] != samples.shape[2]:
        raise ValueError(
            f"others must be (M, {samples.shape[2]}) embeddings, got {tuple(others.shape)}"
        )
    s = F.normalize(samples.float(), dim=-1)
    own = (s * F.normalize(reference.float(), dim=-1)[:, None]).sum(-1).mean()
    other = (s @ F.normalize(others.float(), dim=-1).T).mean()
    return float(own), float(other)


# ---------------------------------------------------------------------------------------------
# do generated variations follow their reference? (checked on the images)


def color_histograms(images: ArrayLike, bins: int = 16) -> torch.Tensor:
    """Per-channel intensity histograms of images in ``[0, 1]``, each channel summing to one.

    Parameters
    ----------
    images : Tensor or ndarray ``(N, C, H, W)`` in ``[0, 1]``
    bins : int
        Equal-width bins over ``[0, 1]`` per channel.

    Returns
    -------
    Tensor ``(N, C·bins)`` float64.

    Examples
    --------
    >>> h = color_histograms(torch.ones(1, 3, 4, 4), bins=4)  # white: every pixel in the top bin
    >>> h.reshape(3, 4).tolist()[0]
    [0.0, 0.0, 0.0, 1.0]
    """
    x = torch.as_tensor(_numpy(images, "images"))
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    n, c = x.shape[:2]
    idx = (x.clamp(0, 1) * bins).long().clamp_max(bins - 1).flatten(2)  # (N, C, HW) bin indices
    counts = torch.zeros(n, c, bins, dtype=torch.float64).scatter_add_(
        2, idx, torch.ones_like(idx, dtype=torch.float64)
    )
    return (counts / idx.shape[-1]).flatten(1)


def histogram_distance(a: ArrayLike, b: ArrayLike, channels: int = 3) -> torch.Tensor:
    """Total-variation distance between histograms, averaged over channels: ``(n, m)`` in ``[0, 1]``.

    ``a`` ``(n, C·bins)`` and ``b`` ``(m, C·bins)`` from :func:`color_histograms`; 0 = the same
    colour distribution, 1 = no colour in common.
    """
    ha, hb = torch.as_tensor(_numpy(a, "a")), torch.as_tensor(_numpy(b, "b"))
    if ha.ndim != 2 or hb.ndim != 2 or ha.shape[1] != hb.shape[1] or ha.shape[1] % channels:
        raise ValueError(
            f"need histograms (n, C·bins) and (m, C·bins) with C={channels}, got {tuple(ha.shape)} and {tuple(hb.shape)}"
        )
    return 0.5 * (ha[:, None] - hb[None]).abs().sum(-1) / channels


def cosine_distance(a: ArrayLike, b: ArrayLike) -> torch.Tensor:
    """``1 − cos`` between the rows of ``a`` ``(n, D)`` and ``b`` ``(m, D)``: ``(n, m)`` in ``[0, 2]``."""
    fa = F.normalize(torch.as_tensor(_numpy(a, "a")), dim=-1)
    fb = F.normalize(torch.as_tensor(_numpy(b, "b")), dim=-1)
    return 1 - fa @ fb.T


@dataclass(frozen=True)
class ReferenceCheck:
    """How much closer generated variations are to their own reference than to the others.

    Attributes
    ----------
    own, other : float
        Mean distance of the samples to their own reference, and to the other references.
    real_own, real_other : float
        The same for a second real crop of each reference's tissue (the baseline a perfect
        conditional model would reach).
    score : float
        ``(other − own) / (real_other − real_own)``: 1 = samples separate the references as well
        as real crops of the same tissue do, 0 = no better than ignoring the reference (a model
        that ignores its condition scores 0 in expectation).
    interval : (float, float)
        Bootstrap 95 % interval of ``score`` over references.
    per_reference : ndarray ``(R,)``
        ``other − own`` of each reference, divided by the real crops' mean separation.
    """

    own: float
    other: float
    real_own: float
    real_other: float
    score: float
    interval: tuple[float, float]
    per_reference: np.ndarray

    def passes(self, threshold: float = 0.5) -> bool:
        """Whether the lower end of the interval reaches ``threshold`` (0.5: half the real gap)."""
        return self.interval[0] >= threshold


def follows_reference(
    samples: ArrayLike,
    references: ArrayLike,
    real_pairs: ArrayLike,
    distance: Callable[[ArrayLike, ArrayLike], torch.Tensor],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> ReferenceCheck:
    """Do samples generated from a reference stay closer to it than to the other references?

    Compared with the same question asked of a second real crop of each reference's tissue.

    Parameters
    ----------
    samples : ``(R, S, F)``
        Features of S samples per reference (colour histograms, embeddings, …).
    references : ``(R, F)``
        Features of the R references, ``R ≥ 2``.
    real_pairs : ``(R, F)``
        Features of another real crop of each reference's tissue (e.g. shifted by a few pixels).
    distance : callable
        ``distance(a (n, F), b (m, F)) -> (n, m)``, e.g. :func:`histogram_distance`,
        :func:`cosine_distance`.
    n_boot, seed : int
        Bootstrap over references for the interval of the score.

    Returns
    -------
    ReferenceCheck

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> refs = torch.randn(6, 8, generator=g)
    >>> real = refs + 0.3 * torch.randn(6, 8, generator=g)
    >>> copies = refs[:, None] + 0.3 * torch.randn(6, 4, 8, generator=g)  # follow their reference
    >>> ignoring = torch.randn(6, 4, 8, generator=g)                      # ignore it
    >>> l2 = lambda a, b: torch.cdist(torch.as_tensor(a), torch.as_tensor(b))
    >>> follows_reference(copies, refs, real, l2).passes(), follows_reference(ignoring, refs, real, l2).passes()
    (True, False)
    """
    s = torch.as_tensor(_numpy(samples, "samples"))
    r = torch.as_tensor(_numpy(references, "references"))
    p = torch.as_tensor(_numpy(real_pairs, "real_pairs"))
    if s.ndim != 3 or r.shape != (s.shape[0], s.shape[2]) or p.shape != r.shape:
        raise ValueError(
            f"need samples (R, S, F), references (R, F), real_pairs (R, F); got {tuple(s.shape)}, "
            f"{tuple(r.shape)}, {tuple(p.shape)}"
        )
    n_ref, n_s = s.shape[:2]
    if n_ref < 2:
        raise ValueError(f"need at least two references to compare with, got {n_ref}")
    d = torch.as_tensor(distance(s.reshape(n_ref * n_s, -1), r)).double().reshape(n_ref, n_s, n_ref)
    eye = torch.eye(n_ref, dtype=torch.bool)
    own = torch.stack([d[i, :, i].mean() for i in range(n_ref)])
    other = torch.stack([d[i][:, ~eye[i]].mean() for i in range(n_ref)])
    dp = torch.as_tensor(distance(p, r)).double()  # (R, R)
    real_own = dp.diagonal()
    real_other = torch.stack([dp[i, ~eye[i]].mean() for i in range(n_ref)])
    gap_s = (other - own).numpy()
    gap_r = (real_other - real_own).numpy()

    def score(gs: np.ndarray, gr: np.ndarray) -> float:
        return float(gs.mean() / gr.mean()) if gr.mean() > 0 else float("nan")

    # resample references, keeping each one's two gaps together (a paired bootstrap)
    interval = bootstrap_interval(score, gap_s, gap_r, n_boot=n_boot, seed=seed)
    return ReferenceCheck(
        own=float(own.mean()),
        other=float(other.mean()),
        real_own=float(real_own.mean()),
        real_other=float(real_other.mean()),
        score=score(gap_s, gap_r),
        interval=interval,
        per_reference=gap_s / gap_r.mean() if gap_r.mean() > 0 else gap_s * np.nan,
    )


# ---------------------------------------------------------------------------------------------
# how many directions do features use?


def participation_ratio(features: ArrayLike) -> float:
    """``(Σ λ)² / Σ λ²`` of the eigenvalues λ of the features' covariance.

    Between 1 (all variance along one direction: collapsed features) and ``D`` (spread evenly
    over all ``D`` dimensions). Features that use few directions give high cosine similarities
    between unrelated images.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> round(participation_ratio(rng.normal(size=(5000, 4))), 1)
    4.0
    >>> round(participation_ratio(rng.normal(size=(5000, 1)) * np.ones((1, 4))), 1)
    1.0
    """
    _, sigma = feature_statistics(features)
    lam = np.clip(np.linalg.eigvalsh((sigma + sigma.T) / 2), 0, None)
    return float(lam.sum() ** 2 / (lam**2).sum()) if lam.sum() > 0 else float("nan")
