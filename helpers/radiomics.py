"""First-order radiomics features in closed form, and feature-imitating networks (FINs) that
learn them and then serve as the first layers of a classifier.

Radiomics describes a region of an image by hand-made features; the first-order ones depend only
on the distribution of its intensities, not on where they sit (:data:`FEATURES`, with the
definitions of pyradiomics):

* mean ``x̄ = (1/N) Σ xᵢ`` and variance ``σ² = (1/N) Σ (xᵢ − x̄)²``;
* skewness ``μ₃ / σ³`` and kurtosis ``μ₄ / σ⁴`` (not the excess: 3 for a Gaussian), both 0 for a
  flat region, with ``μₖ = (1/N) Σ (xᵢ − x̄)ᵏ``;
* entropy ``−Σ_b p_b log₂ p_b`` of the intensity histogram (fixed bins);
* energy, here per voxel: ``(1/N) Σ xᵢ²`` (pyradiomics' Energy divided by ``N``, so regions of
  different sizes compare).

A **feature-imitating network** (:class:`FIN`) is a small network trained to output these
features for any window (:func:`train_fin`). Its per-pixel layers and window pooling mirror what a
first-order feature is — an average of functions of single intensities, then a nonlinear
combination — so it imitates them well. Used as the first layers of a classifier
(:class:`FINClassifier`), it starts the classifier from meaningful local statistics instead of a
random initialisation.

References
----------
.. [1] J. J. M. van Griethuysen et al., "Computational Radiomics System to Decode the
   Radiographic Phenotype", Cancer Research 77(21), 2017 (pyradiomics; feature definitions at
   https://pyradiomics.readthedocs.io/en/latest/features.html).
.. [2] Feature-imitating networks (FINs), the chapter's reading: networks pre-trained to imitate
   closed-form radiomics features, then embedded in larger models (COVID-19 CT, brain-tumour MRI),
   reported to converge faster and more consistently than from random initialisation.

Examples
--------
>>> import torch
>>> from helpers import radiomics
>>> x = torch.tensor([[0.0, 0.25, 0.75, 1.0]])   # two voxels in each of two bins
>>> f = radiomics.first_order(x, bins=2)
>>> dict(zip(radiomics.FEATURES, f[0].tolist()))["entropy"]
1.0
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .runtime import Presets, detect_device, seeded

logger = logging.getLogger(__name__)

__all__ = [
    "FEATURES",
    "FIN",
    "FINClassifier",
    "FINConfig",
    "first_order",
    "r_squared",
    "random_windows",
    "train_fin",
    "window_features",
]

FEATURES: tuple[str, ...] = ("mean", "variance", "skewness", "kurtosis", "entropy", "energy")
"""The first-order features, in the order of :func:`first_order`'s columns."""


def first_order(
    values: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    bins: int = 32,
    value_range: tuple[float, float] = (0.0, 1.0),
) -> torch.Tensor:
    """The six first-order features of each region, in closed form.

    Parameters
    ----------
    values : Tensor ``(N, ...)``
        ``N`` regions (images, windows, volumes) of any shape.
    mask : Tensor ``(N, ...)`` of bool, optional
        Which voxels belong to each region (default: all). Every region needs ≥ 1 voxel.
    bins : int
        Histogram bins of the entropy, equal width over ``value_range`` (values outside fall into
        the edge bins).
    value_range : (float, float)

    Returns
    -------
    Tensor ``(N, 6)`` float64: the columns of :data:`FEATURES`.

    Raises
    ------
    ValueError
        Empty input, NaN values, a mask of another shape or an empty region.
    """
    if (
        not isinstance(values, torch.Tensor)
        or values.ndim < 2
        or values.shape[0] == 0
        or values[0].numel() == 0
    ):
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"values must be a non-empty (N, ...) tensor, got {got}")
    if torch.isnan(values).any():
        raise ValueError(f"values hold {int(torch.isnan(values).sum())} NaN entries")
    x = values.flatten(1).double()
    if mask is None:
        m = torch.ones_like(x)
    else:
        if mask.shape != values.shape:
            raise ValueError(
                f"mask has shape {tuple(mask.shape)} but values have {tuple(values.shape)}"
            )
        m = mask.flatten(1).double()
    count = m.sum(1)
    if (count == 0).any():
        raise ValueError(
            f"region(s) {torch.nonzero(count == 0).flatten().tolist()[:5]} have no voxel in the mask"
        )
    mean = (x * m).sum(1) / count
    dev = (x - mean[:, None]) * m
    mu2, mu3, mu4 = ((dev**k).sum(1) / count for k in (2, 3, 4))
    flat = mu2 <= 1e-20
    safe = torch.where(flat, torch.ones_like(mu2), mu2)
    skew = torch.where(flat, torch.zeros_like(mu2), mu3 / safe**1.5)
    kurt = torch.where(flat, torch.zeros_like(mu2), mu4 / safe**2)
    lo, hi = value_range
    idx = torch.floor((x - lo) * (bins / (hi - lo))).long().clamp(0, bins - 1)
    hist = torch.zeros(len(x), bins, dtype=torch.float64).scatter_add_(1, idx, m) / count[:, None]
    entropy = -(hist * torch.log2(torch.where(hist > 0, hist, torch.ones_like(hist)))).sum(1)
    energy = (x**2 * m).sum(1) / count
    return torch.stack([mean, mu2, skew, kurt, entropy, energy], 1)


def window_features(
    images: torch.Tensor, window: int, stride: int, *, bins: int = 32
) -> torch.Tensor:
    """:func:`first_order` of every ``window × window`` window of ``(N, 1, H, W)`` images, taken
    every ``stride`` pixels: ``(N, 6, H', W')`` float64 with ``H' = (H − window)//stride + 1``."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    patches = F.unfold(images.double(), window, stride=stride)  # (N, window², L)
    hh, ww = (h - window) // stride + 1, (w - window) // stride + 1
    feats = first_order(patches.transpose(1, 2).reshape(-1, window * window), bins=bins)
    return feats.view(n, hh * ww, 6).transpose(1, 2).reshape(n, 6, hh, ww)


def random_windows(
    images: torch.Tensor, n: int, window: int, *, generator: torch.Generator
) -> torch.Tensor:
    """``n`` random ``window × window`` crops ``(n, 1, window, window)`` of ``(N, 1, H, W)`` images."""
    if images.ndim != 4 or min(images.shape[-2:]) < window:
        raise ValueError(
            f"images must be (N, C, H, W) with sides ≥ {window}, got {tuple(images.shape)}"
        )
    k = torch.randint(0, len(images), (n,), generator=generator)
    t = torch.randint(0, images.shape[-2] - window + 1, (n,), generator=generator)
    s = torch.randint(0, images.shape[-1] - window + 1, (n,), generator=generator)
    rows = t[:, None] + torch.arange(window)  # (n, window)
    cols = s[:, None] + torch.arange(window)
    return (
        images[k[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        .permute(0, 3, 1, 2)
        .contiguous()
    )


class FIN(nn.Module):
    """A feature-imitating network for the first-order features of ``window × window`` windows.

    Per-pixel layers (1×1 convolutions) compute functions of single intensities, a
    ``window``-average pools them over each window (every ``stride`` pixels), and per-window
    layers (1×1 convolutions) combine them into :data:`FEATURES`, standardised: the network
    outputs ``(features − mean) / std`` with the statistics of its training targets (buffers
    ``target_mean`` and ``target_std``).

    Parameters
    ----------
    hidden : int
        Width of the per-pixel and per-window layers.
    window, stride : int
        The window and the step between windows when applied to a whole image.
    seed : int, optional
        Initialise from this seed without touching the global random state.

    Shapes
    ------
    ``(B, 1, H, W)`` → ``(B, 6, (H − window)//stride + 1, (W − window)//stride + 1)``
    """

    def __init__(
        self, hidden: int = 32, window: int = 8, stride: int = 4, *, seed: int | None = None
    ):
        super().__init__()
        if not all(isinstance(v, int) and v >= 1 for v in (hidden, window, stride)):
            raise ValueError(
                f"hidden, window and stride must be positive ints, got {hidden}, {window}, {stride}"
            )
        self.window, self.stride = window, stride
        with seeded(seed):
            self.pixel = nn.Sequential(
                nn.Conv2d(1, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, hidden, 1), nn.SiLU()
            )
            self.combine = nn.Sequential(
                nn.Conv2d(hidden, hidden, 1), nn.SiLU(), nn.Conv2d(hidden, len(FEATURES), 1)
            )
        self.register_buffer("target_mean", torch.zeros(len(FEATURES)))
        self.register_buffer("target_std", torch.ones(len(FEATURES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 1 or min(x.shape[-2:]) < self.window:
            raise ValueError(
                f"expected (B, 1, H, W) with H, W ≥ {self.window}, got {tuple(x.shape)}"
            )
        pooled = F.avg_pool2d(self.pixel(x), self.window, self.stride)  # (B, hidden, H', W')
        return self.combine(pooled)  # (B, 6, H', W'), standardised features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The imitated features in their own units, ``(B, 6, H', W')``."""
        return self(x) * self.target_std.view(1, -1, 1, 1) + self.target_mean.view(1, -1, 1, 1)


@dataclass(frozen=True)
class FINConfig(Presets):
    """A FIN and its pre-training on random windows.

    Attributes
    ----------
    hidden, window, stride : int
        Of :class:`FIN`.
    bins : int
        Entropy bins of the targets (on ``[0, 1]``).
    n_windows : int
        Random windows drawn once, with their targets in closed form (the training set).
    steps, batch_size, lr : int, int, float
        AdamW steps (cosine decay), windows per batch, learning rate.
    """

    hidden: int = 16
    window: int = 8
    stride: int = 4
    bins: int = 32
    n_windows: int = 16384
    steps: int = 1000
    batch_size: int = 256
    lr: float = 3e-3

    def __post_init__(self) -> None:
        for name in ("hidden", "window", "stride", "bins", "n_windows", "steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"FINConfig.{name} must be a positive int, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"FINConfig.lr must be > 0, got {self.lr}")

    @classmethod
    def presets(cls) -> dict[str, FINConfig]:
        """One preset per profile (use ``FINConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(hidden=8, n_windows=1024, steps=30, batch_size=64),
            "laptop": cls(),
            "gpu": cls(hidden=32, n_windows=131072, steps=6000, batch_size=1024),
        }


def train_fin(
    images: torch.Tensor,
    config: FINConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[FIN, list[float]]:
    """Pre-train a :class:`FIN` to imitate :func:`first_order` on random windows of ``images``.

    ``config.n_windows`` random windows are drawn once and their features computed in closed
    form, then standardised (mean and standard deviation stored in the FIN's buffers); each step
    takes a random batch of them. The loss is the mean squared error over the six standardised
    features.

    Parameters
    ----------
    images : Tensor ``(N, 1, H, W)`` in ``[0, 1]`` (no labels are used)
    config : FINConfig
    seed : int
        Seed of the initialisation and of the windows.
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool

    Returns
    -------
    (FIN in eval mode, loss of each step)
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got {tuple(images.shape)}")
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device) if device is not None else detect_device()
    fin = FIN(config.hidden, config.window, config.stride, seed=seed)
    windows = random_windows(images, config.n_windows, config.window, generator=gen)
    targets = first_order(windows, bins=config.bins)
    fin.target_mean.copy_(targets.mean(0).float())
    fin.target_std.copy_(targets.std(0).clamp_min(1e-8).float())
    targets = ((targets - targets.mean(0)) / targets.std(0).clamp_min(1e-8)).float()
    windows, targets = windows.to(device), targets.to(device)
    fin.to(device)
    opt = torch.optim.AdamW(fin.parameters(), lr=config.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    losses = []
    fin.train()
    bar = tqdm(range(config.steps), disable=not progress, desc="FIN")
    for _ in bar:
        idx = torch.randint(0, len(windows), (config.batch_size,), generator=gen).to(device)
        loss = F.mse_loss(fin(windows[idx]).flatten(1), targets[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return fin.eval(), losses


class FINClassifier(nn.Module):
    """A classifier whose first layers are a :class:`FIN`: image → six feature maps → two 3×3
    conv layers → global average and max pooling → linear layer.

    The same architecture serves both arms of the comparison: ``fin`` pre-trained (a FIN) or
    freshly initialised (random). Every layer is trained.

    Parameters
    ----------
    fin : FIN
        The first layers (its weights are used as they are).
    num_classes : int
    width : int
        Channels of the conv layers after the FIN.
    seed : int, optional
        Initialisation of the layers after the FIN.
    """

    def __init__(self, fin: FIN, num_classes: int = 2, width: int = 16, *, seed: int | None = None):
        super().__init__()
        self.fin = fin
        with seeded(seed):
            self.conv = nn.Sequential(
                nn.Conv2d(len(FEATURES), width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            )  # fmt: skip
            self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(self.fin(x))  # (B, width, H', W')
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)  # (B, 2·width)
        return self.head(pooled)  # (B, classes)


def r_squared(predicted: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Coefficient of determination per column of ``(N, K)`` predictions: ``1 − SS_res/SS_tot``."""
    p, t = predicted.double(), target.double()
    if p.shape != t.shape or p.ndim != 2:
        raise ValueError(
            f"need predictions and targets of equal (N, K) shape, got {tuple(p.shape)} and {tuple(t.shape)}"
        )
    ss_res = ((p - t) ** 2).sum(0)
    ss_tot = ((t - t.mean(0)) ** 2).sum(0)
    return (1 - ss_res / ss_tot).numpy()
