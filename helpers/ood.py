"""Out-of-distribution detection for whole 3-D scans: intensity histograms, k-nearest-neighbour
scores, and an autoencoder baseline.

Frolova et al. show that, for CT and MRI volumes, a very plain embedding is enough to tell most
out-of-distribution scans from the training distribution: the **histogram of the whole volume's
intensities** (fixed bins on normalised intensities). A test volume's score is its mean distance
to the ``k`` nearest training histograms (:func:`knn_scores`); a high score means "unlike
anything seen in training". The histogram forgets where an intensity sits, so changes that touch
every voxel (another contrast, noise, blur, an offset) move it a lot, and a small local anomaly
hardly at all — the method's limitation, which the notebook measures.

The deep baseline is an autoencoder of axial slices (:class:`SliceAutoencoder`): trained to
reconstruct in-distribution slices, it reconstructs unfamiliar ones worse; the volume's score is
its mean squared reconstruction error, or the largest error averaged over a small window
(:func:`reconstruction_scores`), which is meant to see local anomalies.

References
----------
.. [1] D. Frolova, A. Vasiliuk, M. Belyaev, B. Shirokikh, "Solving Sample-Level
   Out-of-Distribution Detection on 3D Medical Images", arXiv:2212.06506 (2022).
.. [2] D. Zimmerer et al., "MOOD 2020: A Public Benchmark for Out-of-Distribution Detection and
   Localization on Medical Images", IEEE TMI 41(10), 2022.

Examples
--------
>>> import torch
>>> from helpers import ood
>>> train = torch.rand(20, 8, 8, 8) * 0.5
>>> test = torch.cat([torch.rand(3, 8, 8, 8) * 0.5, torch.rand(3, 8, 8, 8)])
>>> h_train = ood.intensity_histograms(train, bins=16, normalise=False)
>>> scores = ood.knn_scores(ood.intensity_histograms(test, bins=16, normalise=False), h_train, k=3)
>>> bool(scores[3:].min() > scores[:3].max())
True
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .metrics import auroc, bootstrap_interval
from .runtime import Presets, detect_device, seeded

logger = logging.getLogger(__name__)

__all__ = [
    "METRICS",
    "AEConfig",
    "SliceAutoencoder",
    "detection_auroc",
    "histogram_distances",
    "intensity_histograms",
    "knn_scores",
    "normalise_intensities",
    "reconstruction_scores",
    "train_autoencoder",
]

METRICS = ("euclidean", "cityblock", "wasserstein")
"""Distances between histograms: ℓ2, ℓ1, and the 1-D earth mover's (Wasserstein-1) distance."""


def _check_volumes(volumes: torch.Tensor, name: str = "volumes", min_dims: int = 2) -> torch.Tensor:
    if not isinstance(volumes, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(volumes).__name__}")
    if volumes.ndim < min_dims:
        raise ValueError(
            f"{name} must have shape (N, ...) with ≥ {min_dims} dims, got {tuple(volumes.shape)}"
        )
    if volumes.shape[0] == 0 or volumes[0].numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(volumes.shape)}")
    nan = torch.isnan(volumes)
    if nan.any():
        bad = torch.nonzero(nan.flatten(1).any(1)).flatten().tolist()
        raise ValueError(
            f"{name} hold {int(nan.sum())} NaN voxels (in item(s) {bad[:5]}); replace or drop them"
        )
    return volumes if volumes.is_floating_point() else volumes.float()


def normalise_intensities(volumes: torch.Tensor, *, percentile: float = 99.5) -> torch.Tensor:
    """Divide each volume by its own ``percentile``-th intensity percentile and clip to [0, 1].

    The robust maximum makes histograms of scans with another gain comparable (a global gain is
    not an anomaly); an offset or another contrast is not undone.

    Parameters
    ----------
    volumes : Tensor ``(N, ...)``
    percentile : float
        In ``(0, 100]``.

    Returns
    -------
    Tensor, same shape, float32 in ``[0, 1]``

    Raises
    ------
    ValueError
        Empty input, NaN voxels or a bad percentile.
    """
    x = _check_volumes(volumes)
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    x = x.float()
    scale = torch.from_numpy(np.percentile(x.flatten(1).numpy(), percentile, axis=1)).float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero volume stays 0
    return (x / scale.view(-1, *([1] * (x.ndim - 1)))).clamp(0, 1)


def intensity_histograms(
    volumes: torch.Tensor,
    *,
    bins: int = 64,
    value_range: tuple[float, float] = (0.0, 1.0),
    normalise: bool = True,
    percentile: float = 99.5,
) -> torch.Tensor:
    """The histogram embedding: each volume's intensity histogram on fixed bins, summing to 1.

    Parameters
    ----------
    volumes : Tensor ``(N, ...)``
        ``N`` volumes (or images) of any shape.
    bins : int
        Equal-width bins over ``value_range``; values outside fall into the edge bins.
    value_range : (float, float)
        Low and high edge (``high`` belongs to the last bin, as in ``numpy.histogram``).
    normalise : bool
        First apply :func:`normalise_intensities` (divide by the ``percentile``-th percentile).
    percentile : float
        Of :func:`normalise_intensities`.

    Returns
    -------
    Tensor ``(N, bins)`` float64, rows summing to 1. Equal to ``numpy.histogram(v, bins,
    value_range)[0] / v.size`` on values inside the range.

    Raises
    ------
    ValueError
        Empty input, NaN voxels, ``bins < 1`` or ``low ≥ high``.
    """
    x = _check_volumes(volumes)
    if not isinstance(bins, int) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    lo, hi = float(value_range[0]), float(value_range[1])
    if not lo < hi:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if normalise:
        x = normalise_intensities(x, percentile=percentile)
    flat = x.flatten(1).double()
    idx = torch.floor((flat - lo) * (bins / (hi - lo))).long().clamp(0, bins - 1)  # (N, V)
    rows = torch.arange(len(flat)).view(-1, 1) * bins
    counts = torch.bincount((idx + rows).flatten(), minlength=len(flat) * bins)
    return counts.view(len(flat), bins).double() / flat.shape[1]


def histogram_distances(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    metric: str = "euclidean",
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """All pairwise distances between the histograms ``a`` ``(N, B)`` and ``b`` ``(M, B)``.

    ``"euclidean"`` is ``‖p − q‖₂`` and ``"cityblock"`` ``‖p − q‖₁`` (equal to SciPy's
    ``cdist``); ``"wasserstein"`` is the 1-D earth mover's distance between the histograms as
    distributions on the bin centres, ``Σ_b |P_b − Q_b| · width`` with ``P, Q`` the cumulative
    sums (equal to ``scipy.stats.wasserstein_distance`` with the histograms as weights).

    Returns
    -------
    Tensor ``(N, M)`` float64

    Raises
    ------
    ValueError
        Unknown metric, empty sets, or different numbers of bins.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    a, b = _check_volumes(a, "a").double(), _check_volumes(b, "b").double()
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"need histograms (N, B) and (M, B) with the same B, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if metric == "euclidean":
        return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")
    if metric == "cityblock":
        return torch.cdist(a, b, p=1)
    width = (value_range[1] - value_range[0]) / a.shape[1]
    return torch.cdist(a.cumsum(1), b.cumsum(1), p=1) * width


def knn_scores(
    test: torch.Tensor, train: torch.Tensor, *, k: int = 5, metric: str = "euclidean"
) -> torch.Tensor:
    """Out-of-distribution score: mean distance of each ``test`` row to its ``k`` nearest
    ``train`` rows (:func:`histogram_distances`). Higher means more unusual.

    Parameters
    ----------
    test : Tensor ``(N, B)``
    train : Tensor ``(M, B)``
    k : int
        ``1 ≤ k ≤ M``.
    metric : str
        One of :data:`METRICS`.

    Returns
    -------
    Tensor ``(N,)`` float64
    """
    _check_volumes(test, "test")
    _check_volumes(train, "train")
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= len(train):
        raise ValueError(f"k must be an int in [1, {len(train)}] (the training rows), got {k!r}")
    d = histogram_distances(test, train, metric=metric)
    return d.topk(k, dim=1, largest=False).values.mean(1)


def detection_auroc(
    in_scores: torch.Tensor | np.ndarray,
    out_scores: torch.Tensor | np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, tuple[float, float]]:
    """AUROC of telling ``out_scores`` (positives) from ``in_scores`` (negatives), and its
    stratified percentile-bootstrap interval (:func:`helpers.metrics.bootstrap_interval`).

    Returns
    -------
    (auroc, (low, high))
    """
    s_in = np.asarray(in_scores, dtype=np.float64).ravel()
    s_out = np.asarray(out_scores, dtype=np.float64).ravel()
    if not len(s_in) or not len(s_out):
        raise ValueError(f"need scores on both sides, got {len(s_in)} in and {len(s_out)} out")
    labels = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    scores = np.r_[s_in, s_out]
    value = auroc(labels, scores)
    interval = bootstrap_interval(
        auroc, labels, scores, n_boot=n_boot, level=level, strata=labels, seed=seed
    )
    return value, interval


# ---------------------------------------------------------------------------------------------
# the deep baseline: an autoencoder of axial slices


@dataclass(frozen=True)
class AEConfig(Presets):
    """The slice autoencoder and its training.

    Attributes
    ----------
    width : int
        Channels of the first conv (then 2×, 4×); three stride-2 stages, so slice sides must be
        divisible by 8.
    latent : int
        Channels of the bottleneck (at 1/8 of the slice side).
    steps, batch_size, lr : int, int, float
        AdamW steps, slices per batch, learning rate (cosine decay).
    """

    width: int = 16
    latent: int = 8
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3

    def __post_init__(self) -> None:
        for name in ("width", "latent", "steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"AEConfig.{name} must be a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"AEConfig.lr must be > 0, got {self.lr}")

    @classmethod
    def presets(cls) -> dict[str, AEConfig]:
        """One preset per profile (use ``AEConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(width=8, latent=4, steps=10, batch_size=16),
            "laptop": cls(width=16, latent=8, steps=400, batch_size=64),
            "gpu": cls(width=32, latent=16, steps=3000, batch_size=256),
        }


class SliceAutoencoder(nn.Module):
    """A convolutional autoencoder of ``(B, 1, H, W)`` slices in ``[0, 1]`` (H, W divisible by 8).

    Three stride-2 conv stages down to a ``latent``-channel map at 1/8 resolution, three
    transposed-conv stages back up, a sigmoid at the end.
    """

    def __init__(self, width: int = 16, latent: int = 8, *, seed: int | None = None):
        super().__init__()
        w = width
        with seeded(seed):

            def down(a: int, b: int) -> nn.Sequential:
                return nn.Sequential(
                    nn.Conv2d(a, b, 4, 2, 1), nn.GroupNorm(min(8, b // 2) or 1, b), nn.SiLU()
                )

            def up(a: int, b: int) -> nn.Sequential:
                return nn.Sequential(
                    nn.ConvTranspose2d(a, b, 4, 2, 1),
                    nn.GroupNorm(min(8, b // 2) or 1, b),
                    nn.SiLU(),
                )

            self.encoder = nn.Sequential(
                down(1, w), down(w, 2 * w), down(2 * w, 4 * w), nn.Conv2d(4 * w, latent, 1)
            )
            self.decoder = nn.Sequential(
                nn.Conv2d(latent, 4 * w, 1), nn.SiLU(), up(4 * w, 2 * w), up(2 * w, w),
                nn.ConvTranspose2d(w, 1, 4, 2, 1),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(
                f"expected slices (B, 1, H, W) with H, W divisible by 8, got {tuple(x.shape)}"
            )
        return torch.sigmoid(self.decoder(self.encoder(x)))  # (B, 1, H, W)


def _slices(volumes: torch.Tensor) -> torch.Tensor:
    """Axial slices ``(N·D, 1, H, W)`` of volumes ``(N, D, H, W)``."""
    if volumes.ndim != 4:
        raise ValueError(f"volumes must be (N, D, H, W), got {tuple(volumes.shape)}")
    return volumes.reshape(-1, 1, *volumes.shape[-2:])


def train_autoencoder(
    volumes: torch.Tensor,
    config: AEConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[SliceAutoencoder, list[float]]:
    """Train a :class:`SliceAutoencoder` on the axial slices of in-distribution ``volumes``.

    Parameters
    ----------
    volumes : Tensor ``(N, D, H, W)`` in ``[0, 1]`` (normalised as the test volumes will be)
    config : AEConfig
    seed : int
        Seed of the initialisation and of the batches.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool

    Returns
    -------
    (model in eval mode, loss of each step)
    """
    slices = _slices(_check_volumes(volumes).float())
    device = torch.device(device) if device is not None else detect_device()
    model = SliceAutoencoder(config.width, config.latent, seed=seed).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    bar = tqdm(range(config.steps), disable=not progress, desc="autoencoder")
    model.train()
    for _ in bar:
        x = slices[torch.randint(0, len(slices), (config.batch_size,), generator=gen)].to(device)
        loss = F.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return model.eval(), losses


@torch.no_grad()
def reconstruction_scores(
    model: SliceAutoencoder, volumes: torch.Tensor, *, window: int = 5, batch_size: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two out-of-distribution scores per volume from the autoencoder's squared error map.

    Parameters
    ----------
    model : SliceAutoencoder
    volumes : Tensor ``(N, D, H, W)``
    window : int
        Side of the cube the error is averaged over for the local score (odd).
    batch_size : int
        Slices per forward pass.

    Returns
    -------
    mean_error : Tensor ``(N,)``
        Mean squared error over the whole volume (a global score).
    local_error : Tensor ``(N,)``
        Largest mean squared error in any ``window³`` cube (a local score).
    """
    x = _check_volumes(volumes).float()
    if x.ndim != 4:
        raise ValueError(f"volumes must be (N, D, H, W), got {tuple(x.shape)}")
    if not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd int, got {window!r}")
    device = next(model.parameters()).device
    slices = _slices(x)
    recon = torch.cat(
        [
            model(slices[k : k + batch_size].to(device)).cpu()
            for k in range(0, len(slices), batch_size)
        ]
    )
    err = ((recon - slices) ** 2).view_as(x)  # (N, D, H, W)
    local = F.avg_pool3d(
        err[:, None], window, stride=1, padding=window // 2, count_include_pad=False
    )
    return err.flatten(1).mean(1), local.flatten(1).max(1).values
