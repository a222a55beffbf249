"""Image-quality and evaluation metrics: PSNR and SSIM, Fréchet distance on features, AUROC,
and the similarity of embeddings to their references.

PSNR is ``10 log10(range² / MSE)`` (:func:`mse_to_psnr` is the formula, :func:`psnr` measures
it on images, arguments ordered ``(reference, image)`` as in scikit-image, whose
``peak_signal_noise_ratio`` it equals); SSIM wraps scikit-image for tensors and batches. The
Fréchet distance is the formula behind FID, on any feature vectors; the matrix square root is
taken through symmetric eigen-decompositions, which stay real and accurate where a general
``sqrtm`` returns complex noise for nearly singular covariances. AUROC is the Mann–Whitney rank
formula and equals scikit-learn's ``roc_auc_score``, ties included.

References
----------
.. [1] M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter, "GANs Trained by a Two
   Time-Scale Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017 (FID).
.. [2] Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
   error visibility to structural similarity", IEEE TIP 13(4), 2004 (SSIM).
.. [3] J. A. Hanley, B. J. McNeil, "The meaning and use of the area under a receiver operating
   characteristic (ROC) curve", Radiology 143(1), 1982.

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

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from skimage.metrics import structural_similarity

ArrayLike = torch.Tensor | np.ndarray


def _numpy(x: ArrayLike | list, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be an array or tensor of numbers, got {type(x).__name__}"
        ) from err


def _image_pairs(reference: ArrayLike, image: ArrayLike) -> tuple[np.ndarray, np.ndarray, bool]:
    """Both as ``(N, C, H, W)`` float64 arrays, and whether the input was a batch."""
    ref, img = _numpy(reference, "reference"), _numpy(image, "image")
    if ref.shape != img.shape:
        raise ValueError(f"reference has shape {ref.shape} but image has shape {img.shape}")
    if ref.ndim == 2:
        return ref[None, None], img[None, None], False
    if ref.ndim == 3:
        return ref[None], img[None], False
    if ref.ndim == 4:
        return ref, img, True
    raise ValueError(f"expected (H, W), (C, H, W) or (N, C, H, W) images, got shape {ref.shape}")


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
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def psnr(reference: ArrayLike, image: ArrayLike, *, data_range: float = 1.0) -> float | np.ndarray:
    """Peak signal-to-noise ratio ``10 log10(data_range² / MSE)`` in dB.

    Parameters
    ----------
    reference, image : Tensor or ndarray
        ``(H, W)``, ``(C, H, W)`` or a batch ``(N, C, H, W)``, same shape.
    data_range : float
        Maximum minus minimum possible value (1 for images in [0, 1]).

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
    ref, img, batch = _image_pairs(reference, image)
    mse = ((ref - img) ** 2).reshape(len(ref), -1).mean(axis=1)  # (N,) in float64
    out = mse_to_psnr(mse, data_range)
    return out if batch else float(out[0])


def ssim(
    reference: ArrayLike, image: ArrayLike, *, data_range: float = 1.0, **options
) -> float | np.ndarray:
    """Structural similarity (Wang et al. 2004), scikit-image's implementation.

    Parameters
    ----------
    reference, image : Tensor or ndarray
        ``(H, W)``, ``(C, H, W)`` or a batch ``(N, C, H, W)``, same shape; channels are averaged.
    data_range : float
        Maximum minus minimum possible value (1 for images in [0, 1]).
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
    ref, img, batch = _image_pairs(reference, image)
    if min(ref.shape[-2:]) < options.get("win_size", 7):
        raise ValueError(
            f"SSIM needs images of at least win_size={options.get('win_size', 7)} pixels per "
            f"side, got {ref.shape[-2]}×{ref.shape[-1]}; pass a smaller odd win_size"
        )
    out = np.array(
        [
            structural_similarity(r, i, data_range=data_range, channel_axis=0, **options)
            for r, i in zip(ref, img, strict=True)
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
    s = F.normalize(samples.float(), dim=-1)
    own = (s * F.normalize(reference.float(), dim=-1)[:, None]).sum(-1).mean()
    other = (s @ F.normalize(others.float(), dim=-1).T).mean()
    return float(own), float(other)


def bootstrap_interval(
    *samples: ArrayLike | list,
    statistic=None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic of one or more samples.

    Each sample is resampled with replacement, independently of the others, ``n_boot`` times;
    the interval holds the central ``level`` share of the statistic's values (Efron's percentile
    interval).

    Parameters
    ----------
    *samples : array-like, each ``(N_i,)``
        E.g. 0/1 outcomes (the interval of a rate), or two groups.
    statistic : callable, optional
        ``statistic(*resampled) -> float``; default the mean of the single sample.
    n_boot : int
        Bootstrap repeats.
    level : float
        Coverage, in ``(0, 1)``.
    seed : int
        Seed of the resampling.

    Returns
    -------
    (low, high) : floats

    Examples
    --------
    >>> lo, hi = bootstrap_interval([0, 1] * 50)
    >>> 0.38 < lo < 0.5 < hi < 0.62
    True
    >>> bootstrap_interval([1, 1, 1], [0, 0], statistic=lambda a, b: a.mean() - b.mean())
    (1.0, 1.0)
    """
    if not samples:
        raise ValueError("give at least one sample")
    arrays = [_numpy(s, "sample").ravel() for s in samples]
    if any(a.size == 0 for a in arrays):
        raise ValueError(f"every sample needs values, got sizes {[a.size for a in arrays]}")
    if statistic is None:
        if len(arrays) != 1:
            raise ValueError("several samples need a statistic of all of them")
        statistic = np.mean
    if not 0 < level < 1 or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot ≥ 1, got {level}, {n_boot}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [statistic(*(a[rng.integers(0, a.size, a.size)] for a in arrays)) for _ in range(n_boot)],
        dtype=np.float64,
    )
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))
