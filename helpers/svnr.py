"""Real, spatially-variant noise and its removal with diffusion: noise models, time maps, SVNR.

Real noise is not white: its level changes across the image. Shot noise grows with the signal
(microscopy, photography: Poisson–Gaussian), and in parallel MRI the noise level follows the coil
sensitivities (high where the coils see little). SVNR (Pearl et al. 2023) gives every pixel its
own diffusion time, chosen so that the forward process at that time holds exactly that pixel's
noise level, and starts the reverse process from the noisy image itself:

* noise models, each returning the noisy image **and** its per-pixel noise level σ(x, y):
  :func:`poisson_gaussian` (variance a·x + b²) and :func:`coil_noise` with :func:`coil_sigma_map`
  (a smooth, coil-sensitivity-like field of noise levels); :func:`check_sigma_map` validates maps;
* time maps: :func:`alpha_bar_at` (ᾱ at real-valued times), :func:`time_of_alpha_bar` (its
  inverse) and :func:`time_map`: σ → t with ᾱ(t) = 1/(1 + σ²) (σ in the model's [−1, 1] units);
* the forward process *given the noisy image*, :func:`bridge_sample`: x_t drawn between the clean
  image and the (scaled) noisy image, so that the noise in x_t is correlated with the noise in
  the condition exactly as it is along the reverse process;
* one reverse step with a time per pixel, :func:`svnr_step` (a DDIM step; η = 1 draws from the
  posterior q(x_{t'} | x_t, x̂₀)), the schedule of time maps :func:`reverse_times`, and the whole
  sampler :func:`denoise`; :func:`denoise_conditional` is the SR3-style baseline that starts from pure noise;
* :func:`train`: the training of both denoisers (conditional DDPM and SVNR) on the fly, with
  fresh noise maps every batch; :class:`SVNRConfig` holds the settings of each profile.

Value ranges: images and noise levels handed in and out are in [0, 1] image units; inside, the
diffusion works in [−1, 1] (σ doubles: σ_model = 2·σ_image).

The correlation, in one line. With γ_t = (1 − ᾱ_t)/ᾱ_t the scaled state z_t = x_t/√ᾱ_t is
x₀ + √γ_t ε (a variance-exploding chain), and the noisy image is the chain at t*: y = x₀ + σ ε_y
with γ_{t*} = σ². Given x₀ and y, the chain at t ≤ t* is the Gaussian bridge

    z_t = x₀ + √γ_t ε̃,   ε̃ = √(γ_t/γ_{t*}) ε_y + √(1 − γ_t/γ_{t*}) ε,   ε ~ N(0, I),

so the network's target ε̃ shares the component √(γ_t/γ_{t*}) ε_y with the condition y. Training
samples x_t this way (not with noise independent of y, as a plain conditional model does).
The form follows the paper's treatment of the correlation (its eq. 11 in the arXiv version, as
quoted by a public re-implementation); equation numbers were not checked against the paper's text.

References
----------
.. [1] N. Pearl, Y. Brodsky, D. Berman, A. Zomet, A. Rav-Acha, D. Cohen-Or, D. Lischinski,
   "SVNR: Spatially-variant Noise Removal with Denoising Diffusion", arXiv 2306.16052, 2023.
.. [2] C. Saharia et al., "Image Super-Resolution via Iterative Refinement" (SR3), IEEE TPAMI
   2022 (the noisy image as an extra input channel).
.. [3] A. Foi, M. Trimeche, V. Katkovnik, K. Egiazarian, "Practical Poissonian-Gaussian noise
   modeling and fitting for single-image raw-data", IEEE TIP 17(10), 2008.
.. [4] K. P. Pruessmann et al., "SENSE: Sensitivity encoding for fast MRI", MRM 42, 1999 (noise
   amplified where coil sensitivities are low).
.. [5] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020;
   J. Song, C. Meng, S. Ermon, "Denoising Diffusion Implicit Models", ICLR 2021.

Examples
--------
>>> import torch
>>> from helpers import diffusion, svnr
>>> s = diffusion.Schedule.make("linear", T=1000)
>>> sigma = torch.full((1, 1, 4, 4), 0.1)            # σ = 0.1 in [0, 1] image units
>>> t = svnr.time_map(sigma, s)                         # one time per pixel, (1, 4, 4)
>>> ab = svnr.alpha_bar_at(t, s)
>>> round(float(ab[0, 0, 0]), 5), round(1 / (1 + (2 * 0.1) ** 2), 5)
(0.96154, 0.96154)
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from .diffusion import (
    Schedule,
    ddim_step,
    ddim_timesteps,
    ddpm_step,
    q_sample,
    to_signed,
    to_unit,
)
from .diffusion_training import TrainResult
from .optim import ema_decay_at, ema_update, lr_at
from .runtime import Presets
from .unet import UNet

logger = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "SVNRConfig",
    "alpha_bar_at",
    "bridge_sample",
    "check_sigma_map",
    "coil_noise",
    "coil_sigma_map",
    "denoise",
    "denoise_conditional",
    "make_unet",
    "poisson_gaussian",
    "poisson_gaussian_sigma",
    "reverse_times",
    "start_state",
    "svnr_step",
    "time_map",
    "time_of_alpha_bar",
    "train",
]

KINDS = ("conditional", "svnr")
"""What :func:`train` trains: the SR3-style conditional DDPM, or SVNR."""


# ---------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True)
class SVNRConfig(Presets):
    """The denoisers of notebook 07 and the noise they are trained for, per profile.

    Attributes
    ----------
    size : int
        Side of the images (grey, one channel).
    base_channels, channel_mults, attn_resolutions : the U-Net (the same for every denoiser).
    T, beta_start, beta_end : int, float, float
        The linear schedule. ``gpu`` uses DDPM's (1000, 1e-4, 0.02); smaller profiles use fewer
        steps with β scaled by 1000/T, which keeps ᾱ as a function of t/T nearly the same.
    train_steps, batch_size, lr, ema_decay, warmup : training (the same budget for each model).
    constant_share : float
        Share of SVNR's training images that get one noise level for the whole image (so the same
        network can also be run under the white-noise assumption).
    svnr_steps : int
        Reverse steps of SVNR (the paper: about 20–25 with T = 1000).
    eta : float
        η of SVNR's reverse steps. 0 (default): deterministic DDIM steps, the better choice for
        PSNR and SSIM (a posterior sample, η = 1, has twice the expected squared error of the
        posterior mean); 1: draw from the posterior q(x_{t'} | x_t, x̂₀) at every step.
    sigma_min, sigma_ratio, coils, coil_width : the MRI noise field (:func:`coil_sigma_map`).
    gain, read_sigma : the Poisson–Gaussian noise of histology (:func:`poisson_gaussian`).
    """

    size: int = 32
    base_channels: int = 8
    channel_mults: tuple[int, ...] = (1, 2, 4)
    attn_resolutions: tuple[int, ...] = ()
    T: int = 200
    beta_start: float = 5e-4
    beta_end: float = 0.1
    train_steps: int = 700
    batch_size: int = 16
    lr: float = 4e-3
    ema_decay: float = 0.995
    warmup: int = 50
    constant_share: float = 0.25
    svnr_steps: int = 20
    eta: float = 0.0
    sigma_min: float = 0.02
    sigma_ratio: float = 8.0
    coils: int = 4
    coil_width: float = 0.45
    gain: float = 0.02
    read_sigma: float = 0.01

    def __post_init__(self) -> None:
        for name in (
            "size",
            "base_channels",
            "T",
            "train_steps",
            "batch_size",
            "svnr_steps",
            "coils",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SVNRConfig.{name} must be a positive int, got {value!r}")
        if self.size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(
                f"SVNRConfig.size={self.size} is not divisible by 2 ** (levels - 1) of "
                f"channel_mults {self.channel_mults}"
            )
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )
        if self.svnr_steps > self.T:
            raise ValueError(f"svnr_steps={self.svnr_steps} must not exceed T={self.T}")
        if not 0 <= self.constant_share <= 1 or self.eta < 0 or not 0 <= self.ema_decay < 1:
            raise ValueError(
                f"need 0 <= constant_share <= 1, eta >= 0, 0 <= ema_decay < 1; got "
                f"{self.constant_share}, {self.eta}, {self.ema_decay}"
            )
        if not (self.sigma_min > 0 and self.sigma_ratio >= 1 and self.coil_width > 0):
            raise ValueError(
                f"need sigma_min > 0, sigma_ratio >= 1, coil_width > 0; got {self.sigma_min}, "
                f"{self.sigma_ratio}, {self.coil_width}"
            )
        if not (self.gain >= 0 and self.read_sigma >= 0 and self.lr > 0):
            raise ValueError(
                f"need gain >= 0, read_sigma >= 0, lr > 0; got {self.gain}, {self.read_sigma}, {self.lr}"
            )

    @classmethod
    def presets(cls) -> dict[str, SVNRConfig]:
        """One preset per profile (use ``SVNRConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(size=16, base_channels=8, channel_mults=(1, 2), T=50, beta_start=2e-3,
                         beta_end=0.4, train_steps=12, batch_size=8, warmup=4, svnr_steps=5),
            "laptop": cls(),
            "gpu": cls(size=64, base_channels=64, channel_mults=(1, 2, 2, 4), attn_resolutions=(8,),
                       T=1000, beta_start=1e-4, beta_end=0.02, train_steps=20000, batch_size=64,
                       lr=2e-4, ema_decay=0.9995, warmup=500, svnr_steps=25),
        }  # fmt: skip

    def schedule(self) -> Schedule:
        """The linear schedule of this profile."""
        return Schedule.make("linear", T=self.T, start=self.beta_start, end=self.beta_end)


def make_unet(config: SVNRConfig, *, seed: int = 0) -> UNet:
    """The U-Net of every denoiser here: input (x_t, noisy image), output ε̂, one channel each."""
    return UNet(
        2,
        1,
        base_channels=config.base_channels,
        channel_mults=config.channel_mults,
        attn_resolutions=config.attn_resolutions,
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# noise models


def check_sigma_map(sigma: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """Check a per-pixel noise-level map and return it as a float tensor.

    Parameters
    ----------
    sigma : Tensor
        Noise standard deviations, ``≥ 0`` and finite.
    like : Tensor ``(B, C, H, W)``, optional
        The image the map belongs to: ``sigma`` must then have shape ``(B, 1, H, W)`` (one level
        per pixel) or the image's own shape.

    Raises
    ------
    TypeError
        ``sigma`` is not a tensor.
    ValueError
        NaN or infinite values, negative values, or a shape unlike the image's.
    """
    if not isinstance(sigma, torch.Tensor):
        raise TypeError(f"the noise-level map must be a torch.Tensor, got {type(sigma).__name__}")
    sigma = sigma.float()
    if not bool(torch.isfinite(sigma).all()):
        bad = int((~torch.isfinite(sigma)).sum())
        raise ValueError(f"the noise-level map holds {bad} NaN or infinite value(s)")
    if sigma.numel() and float(sigma.min()) < 0:
        raise ValueError(f"noise levels must be ≥ 0, got a minimum of {float(sigma.min()):.4g}")
    if like is not None:
        b, _, h, w = like.shape
        if tuple(sigma.shape) not in ((b, 1, h, w), tuple(like.shape)):
            raise ValueError(
                f"the noise-level map has shape {tuple(sigma.shape)}; for an image of shape "
                f"{tuple(like.shape)} it must be ({b}, 1, {h}, {w}) or {tuple(like.shape)}"
            )
    return sigma


def _check_images(x: torch.Tensor, name: str = "image") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{name} must be a batch (B, C, H, W), got shape {tuple(x.shape)}")


def poisson_gaussian_sigma(image: torch.Tensor, *, gain: float, read_sigma: float) -> torch.Tensor:
    """σ(x) = √(gain·x + read_sigma²): the noise level of :func:`poisson_gaussian` at intensity x.

    Applied to a clean image it is the true map; applied to a smoothed noisy image it is the
    estimate a user can compute (negative intensities count as 0).
    """
    if gain < 0 or read_sigma < 0:
        raise ValueError(f"need gain >= 0 and read_sigma >= 0, got {gain}, {read_sigma}")
    return (gain * image.clamp(min=0) + read_sigma**2).sqrt()


def poisson_gaussian(
    image: torch.Tensor,
    *,
    gain: float = 0.02,
    read_sigma: float = 0.01,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal-dependent noise: y = gain·Poisson(x/gain) + N(0, read_sigma²) (Foi et al. 2008).

    The photon count x/gain is Poisson, so Var[y | x] = gain·x + read_sigma²: bright pixels are
    noisier in absolute terms, dark ones relative to their signal.

    Parameters
    ----------
    image : Tensor ``(B, C, H, W)`` in ``[0, 1]``
        The clean image (intensity ∝ expected photon count).
    gain : float
        Intensity of one photon (``0`` gives pure Gaussian read noise).
    read_sigma : float
        Standard deviation of the signal-independent read noise.
    generator : torch.Generator, optional
        CPU generator of both draws.

    Returns
    -------
    noisy : Tensor ``(B, C, H, W)`` (not clipped)
    sigma : Tensor ``(B, C, H, W)``
        The per-pixel standard deviation √(gain·x + read_sigma²).

    Examples
    --------
    >>> x = torch.full((1, 1, 2, 2), 0.5)
    >>> y, s = poisson_gaussian(x, gain=0.02, read_sigma=0.01, generator=torch.Generator().manual_seed(0))
    >>> round(float(s[0, 0, 0, 0]), 4)
    0.1005
    """
    _check_images(image)
    sigma = poisson_gaussian_sigma(image, gain=gain, read_sigma=read_sigma)
    x = image.clamp(min=0).cpu()
    shot = torch.poisson(x / gain, generator=generator) * gain if gain > 0 else x
    read = torch.randn(x.shape, generator=generator) * read_sigma
    return (shot + read).to(image.device, image.dtype), sigma


def coil_sigma_map(
    n: int,
    size: int,
    *,
    sigma_min: float = 0.02,
    ratio: float = 8.0,
    coils: int = 4,
    width: float = 0.45,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Smooth noise-level maps like those of parallel MRI: σ ∝ 1/(coil sensitivity).

    ``coils`` Gaussian sensitivity profiles s_c(r) = exp(−|r − r_c|²/(2·width²)) sit on a circle of
    radius 0.9 (image coordinates in [−1, 1]) at random angles; the combined root-sum-of-squares
    sensitivity S(r) = √Σ s_c(r)² is high near the coils and low far from them, and the noise
    level is σ(r) = sigma_min · S_max / S(r), capped at ``ratio · sigma_min``. (A g-factor-free,
    coil-combined magnitude image has noise inversely proportional to S.)

    Parameters
    ----------
    n, size : int
        Number of maps and their side.
    sigma_min : float
        The lowest noise level (at the best-covered pixel), in [0, 1] image units.
    ratio : float
        Highest over lowest level (≥ 1).
    coils : int
        Number of coils.
    width : float
        Width of each coil's sensitivity, in image half-widths.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor ``(n, 1, size, size)``: σ in ``[sigma_min, ratio·sigma_min]``.
    """
    if not (isinstance(n, int) and n >= 1 and isinstance(size, int) and size >= 1):
        raise ValueError(f"need n >= 1 and size >= 1, got {n!r}, {size!r}")
    if not (sigma_min > 0 and ratio >= 1 and coils >= 1 and width > 0):
        raise ValueError(
            f"need sigma_min > 0, ratio >= 1, coils >= 1, width > 0; got {sigma_min}, {ratio}, {coils}, {width}"
        )
    grid = torch.linspace(-1, 1, size)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")  # (size, size)
    angles = torch.rand((n, coils), generator=generator) * 2 * math.pi  # (n, coils)
    cy, cx = 0.9 * torch.sin(angles), 0.9 * torch.cos(angles)
    d2 = (yy[None, None] - cy[..., None, None]) ** 2 + (xx[None, None] - cx[..., None, None]) ** 2
    s = torch.exp(-d2 / (2 * width**2)).pow(2).sum(1, keepdim=True).sqrt()  # (n, 1, size, size)
    s_max = s.amax(dim=(-2, -1), keepdim=True)
    return sigma_min * (s_max / s).clamp(max=ratio)


def coil_noise(
    image: torch.Tensor, sigma: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """y = x + σ(x, y)·ε with a per-pixel level ``sigma`` (Gaussian; MRI magnitude noise is
    Rician, which is close to Gaussian where the signal is well above σ).

    Parameters
    ----------
    image : Tensor ``(B, C, H, W)``
    sigma : Tensor ``(B, 1, H, W)`` or ``(B, C, H, W)``, ≥ 0 (see :func:`check_sigma_map`)
    generator : torch.Generator, optional

    Returns
    -------
    Tensor ``(B, C, H, W)``: the noisy image (not clipped).
    """
    _check_images(image)
    sigma = check_sigma_map(sigma, image)
    eps = torch.randn(image.shape, generator=generator).to(image.device, image.dtype)
    return image + sigma.to(image.device) * eps


# ---------------------------------------------------------------------------------------------
# time maps


def _knots(schedule: Schedule) -> tuple[torch.Tensor, torch.Tensor]:
    """ᾱ at t = −1, 0, …, T−1 (ᾱ_{−1} = 1), as float32 values and float64 −log values."""
    ab = torch.cat([torch.ones(1), schedule.alpha_bars.float().cpu()])  # (T + 1,)
    return ab, -torch.log(ab.double())


def alpha_bar_at(t: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """ᾱ at real-valued times ``t ∈ [−1, T−1]``, any shape.

    At integer t it is ``schedule.alpha_bars[t]`` exactly (t = −1: ᾱ = 1, the clean image);
    between integers, log ᾱ is interpolated linearly, so ᾱ stays monotone and
    :func:`time_of_alpha_bar` inverts it.
    """
    t = torch.as_tensor(t)
    if not bool(torch.isfinite(t).all()):
        raise ValueError("times must be finite")
    lo_t, hi_t = (float(t.min()), float(t.max())) if t.numel() else (0.0, 0.0)
    if lo_t < -1 - 1e-6 or hi_t > schedule.T - 1 + 1e-6:
        raise ValueError(
            f"times must lie in [-1, {schedule.T - 1}] for T={schedule.T}, got {lo_t:.4g} … {hi_t:.4g}"
        )
    ab, neg_log = _knots(schedule)
    u = (t.double().cpu() + 1).clamp(0, schedule.T)  # knot coordinate: 0 ↔ t = −1
    lo = u.floor().long().clamp(max=schedule.T)
    hi = (lo + 1).clamp(max=schedule.T)
    w = u - lo.double()
    interp = torch.exp(-((1 - w) * neg_log[lo] + w * neg_log[hi])).float()
    out = torch.where(w == 0, ab[lo], interp)
    return out.to(t.device) if t.is_floating_point() else out


def time_of_alpha_bar(alpha_bar: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """The real-valued time t ∈ [−1, T−1] at which ᾱ(t) = ``alpha_bar`` (inverse of
    :func:`alpha_bar_at`).

    Raises
    ------
    ValueError
        Values outside ``[ᾱ_{T−1}, 1]``: noise beyond what the schedule reaches.
    """
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    ab, neg_log = _knots(schedule)
    if a.numel() and (
        not bool(torch.isfinite(a).all()) or float(a.max()) > 1 or float(a.min()) <= 0
    ):
        raise ValueError(f"ᾱ must lie in (0, 1], got {float(a.min()):.4g} … {float(a.max()):.4g}")
    target = -torch.log(a.cpu())
    if a.numel() and float(target.max()) > float(neg_log[-1]) * (1 + 1e-6):
        raise ValueError(
            f"ᾱ = {float(a.min()):.4g} is below the schedule's last value "
            f"ᾱ_{schedule.T - 1} = {float(ab[-1]):.4g}: the noise is stronger than the schedule reaches"
        )
    target = target.clamp(0, float(neg_log[-1]))
    hi = torch.searchsorted(neg_log, target.reshape(-1).contiguous()).reshape(target.shape)
    hi = hi.clamp(1, schedule.T)
    lo = hi - 1
    w = (target - neg_log[lo]) / (neg_log[hi] - neg_log[lo])
    return (lo.double() + w - 1).float().to(torch.as_tensor(alpha_bar).device)


def time_map(sigma: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """Per-pixel diffusion times of a noise-level map: t with ᾱ(t) = 1/(1 + (2σ)²).

    A pixel with noise σ (image units; 2σ in the model's [−1, 1] units), scaled by √ᾱ, is
    √ᾱ·x₀ + √ᾱ·2σ·ε, the forward process at time t exactly when 1 − ᾱ = ᾱ·(2σ)².

    Parameters
    ----------
    sigma : Tensor ``(B, 1, H, W)`` or ``(B, C, H, W)``
        Noise levels in [0, 1] image units (with several channels their root-mean-square is used:
        one time per pixel).
    schedule : Schedule

    Returns
    -------
    Tensor ``(B, H, W)``: times in ``[−1, T−1]`` (−1 where σ = 0).
    """
    sigma = check_sigma_map(sigma)
    if sigma.ndim != 4:
        raise ValueError(
            f"the noise-level map must be (B, 1, H, W), got shape {tuple(sigma.shape)}"
        )
    s2 = (2 * sigma).pow(2).mean(1)  # (B, H, W): σ² in model units
    return time_of_alpha_bar(1 / (1 + s2.double()), schedule).to(sigma.device)


def start_state(noisy: torch.Tensor, t_star: torch.Tensor, schedule: Schedule) -> torch.Tensor:
    """x_{t*} = √ᾱ(t*)·y: the noisy image (model units) scaled to its own time map."""
    ab = alpha_bar_at(t_star, schedule).to(noisy.device, noisy.dtype)[:, None]
    return ab.sqrt() * to_signed(noisy)


# ---------------------------------------------------------------------------------------------
# the forward process given the noisy image, and one reverse step


def bridge_sample(
    x0: torch.Tensor,
    eps_y: torch.Tensor,
    t: torch.Tensor,
    t_star: torch.Tensor,
    schedule: Schedule,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t of the chain that passes through the scaled noisy image at each pixel's t*.

    With γ = (1 − ᾱ)/ᾱ and ρ = √(γ_t/γ_{t*}) per pixel:
    ε̃ = ρ·ε_y + √(1 − ρ²)·ε and x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε̃. At t = t*, x_t = √ᾱ_{t*}·y;
    at t = −1, x_t = x₀.

    Parameters
    ----------
    x0 : Tensor ``(B, C, H, W)`` in [−1, 1]
    eps_y : Tensor ``(B, C, H, W)``
        The standardised noise of the noisy image: y = x₀ + 2σ·ε_y.
    t, t_star : Tensor ``(B, H, W)``
        Current times (≤ t_star) and the noisy image's time map.
    schedule : Schedule
    noise : Tensor ``(B, C, H, W)``
        Fresh ε ~ N(0, I).

    Returns
    -------
    x_t, eps_tilde : Tensors ``(B, C, H, W)``: the state and the network's target ε̃.
    """
    if bool((t > t_star + 1e-4).any()):
        raise ValueError("t must not exceed t_star: the chain is sampled between x₀ and y")
    ab = alpha_bar_at(t, schedule).double()[:, None].to(x0.device)  # (B, 1, H, W)
    ab_star = alpha_bar_at(t_star, schedule).double()[:, None].to(x0.device)
    gamma, gamma_star = (1 - ab) / ab, (1 - ab_star) / ab_star
    rho = torch.where(gamma_star > 0, gamma / gamma_star.clamp(min=1e-30), 0.0).clamp(0, 1).sqrt()
    eps_tilde = rho * eps_y + (1 - rho**2).sqrt() * noise
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps_tilde
    return x_t.to(x0.dtype), eps_tilde.to(x0.dtype)


def svnr_step(
    eps: torch.Tensor,
    t: torch.Tensor,
    t_prev: torch.Tensor,
    x_t: torch.Tensor,
    schedule: Schedule,
    *,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_x0: bool = False,
) -> torch.Tensor:
    """One reverse step with a time per pixel: DDIM's update (DDIM eq. 12) applied pixel by pixel.

    x̂₀ = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, then x_{t'} = √ᾱ_{t'} x̂₀ + √(1 − ᾱ_{t'} − s²) ε̂ + s z with
    s = η √((1−ᾱ_{t'})/(1−ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t'}), every quantity a map. η = 1 draws from the
    posterior q(x_{t'} | x_t, x₀ = x̂₀), which given x̂₀ does not depend on the noisy image (the
    chain is Markov), so the correlation with the condition needs no extra term here. A pixel
    already clean (t = t' = −1) stays as it is; with a constant map this is exactly
    :func:`helpers.diffusion.ddim_step`.

    Parameters
    ----------
    eps : Tensor ``(B, C, H, W)``
        ε̂ at (x_t, t).
    t, t_prev : Tensor ``(B, H, W)``
        Time maps, ``−1 ≤ t_prev ≤ t`` at every pixel.
    x_t : Tensor ``(B, C, H, W)``
    schedule : Schedule
    eta : float
    noise, generator : optional
        z (drawn from ``generator`` when omitted and η > 0).
    clip_x0 : bool
        Clamp x̂₀ to [−1, 1].

    Returns
    -------
    Tensor ``(B, C, H, W)``: x_{t'}.
    """
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if (
        eps.shape != x_t.shape
        or t.shape != t_prev.shape
        or t.shape != (x_t.shape[0], *x_t.shape[-2:])
    ):
        raise ValueError(
            f"need eps like x_t (B, C, H, W) and time maps (B, H, W); got eps {tuple(eps.shape)}, "
            f"x_t {tuple(x_t.shape)}, t {tuple(t.shape)}, t_prev {tuple(t_prev.shape)}"
        )
    if bool((t_prev > t + 1e-6).any()):
        raise ValueError(
            "t_prev must not exceed t at any pixel (the reverse process goes back in time)"
        )
    ab = alpha_bar_at(t, schedule).double()[:, None].to(x_t.device)  # (B, 1, H, W)
    ab_prev = alpha_bar_at(t_prev, schedule).double()[:, None].to(x_t.device)
    x0 = (x_t.double() - (1 - ab).sqrt() * eps.double()) / ab.sqrt()
    if clip_x0:
        x0 = x0.clamp(-1, 1)
    ratio = torch.where(ab < 1, (1 - ab_prev) / (1 - ab).clamp(min=1e-30), 0.0)
    s = eta * (ratio * (1 - ab / ab_prev)).clamp(min=0).sqrt()
    x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - s**2).clamp(min=0).sqrt() * eps.double()
    if eta > 0:
        if noise is None:
            where = generator.device if generator is not None else x_t.device
            noise = torch.randn(x_t.shape, generator=generator, device=where).to(x_t.device)
        x_prev = x_prev + s * noise.double()
    return x_prev.to(x_t.dtype)


def reverse_times(t_star: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """The time maps the reverse process visits: t_k = max(t* − k·Δ, −1), k = 0 … steps.

    Every pixel moves back by the same Δ = (max t* + 1)/steps per step (per image), so the
    noisiest pixel reaches −1 (clean) at the last step and cleaner pixels reach it earlier and
    then stay. With a constant map this is DDIM's evenly spaced schedule.

    Returns
    -------
    list of ``steps + 1`` tensors ``(B, H, W)``, starting with ``t_star``, ending at −1.
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    top = t_star.amax(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
    delta = (top + 1) / steps
    return [(t_star - k * delta).clamp(min=-1) if k < steps else torch.full_like(t_star, -1.0)
            for k in range(steps + 1)]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the two samplers


def _model_device(model: nn.Module, device) -> torch.device:
    return torch.device(device) if device is not None else next(model.parameters()).device


@torch.no_grad()
def denoise(
    model: nn.Module,
    noisy: torch.Tensor,
    sigma: torch.Tensor,
    *,
    schedule: Schedule,
    steps: int,
    eta: float = 0.0,
    seed: int = 0,
    clip_x0: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """SVNR: start from the noisy image at its own time map and run ``steps`` reverse steps.

    x ← √ᾱ(t*)·y; for each pair of time maps (t, t') of :func:`reverse_times`:
    ε̂ = model([x, y], t) and x ← :func:`svnr_step`. A constant ``sigma`` map runs the same
    network under the white-noise assumption (one level for the whole image).

    Parameters
    ----------
    model : nn.Module
        ``model(cat([x_t, y]), t_map) -> ε̂`` (:func:`make_unet`, trained by :func:`train` with
        ``kind="svnr"``).
    noisy : Tensor ``(B, 1, H, W)``
        Noisy images in [0, 1] units (not clipped).
    sigma : Tensor ``(B, 1, H, W)``
        Their noise levels (image units).
    schedule : Schedule
    steps : int
        Network evaluations.
    eta, seed, clip_x0 : see :func:`svnr_step` (η = 0: deterministic); ``seed`` seeds every z.
    device : optional
        Default: the model's.
    progress : bool

    Returns
    -------
    Tensor ``(B, 1, H, W)``: denoised images in [0, 1].
    """
    _check_images(noisy, "noisy")
    sigma = check_sigma_map(sigma, noisy)
    device = _model_device(model, device)
    schedule = schedule.to(device)
    y = noisy.to(device)
    t_star = time_map(sigma, schedule).to(device)
    x = start_state(y, t_star, schedule)
    gen = torch.Generator().manual_seed(seed)
    was = model.training
    model.eval()
    times = reverse_times(t_star, steps)
    for t, t_prev in tqdm(
        list(zip(times[:-1], times[1:], strict=True)), disable=not progress, desc="SVNR"
    ):
        eps = model(torch.cat([x, to_signed(y)], dim=1), t)
        z = torch.randn(x.shape, generator=gen).to(device) if eta > 0 else None
        x = svnr_step(eps, t, t_prev, x, schedule, eta=eta, noise=z, clip_x0=clip_x0)
    model.train(was)
    return to_unit(x)


@torch.no_grad()
def denoise_conditional(
    model: nn.Module,
    noisy: torch.Tensor,
    *,
    schedule: Schedule,
    sampler: str = "ddpm",
    steps: int | None = None,
    seed: int = 0,
    clip_x0: bool = True,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """The SR3-style baseline: a conditional DDPM from pure noise, the noisy image as an extra
    input channel, ε̂ = model([x_t, y], t).

    ``sampler="ddpm"`` runs the full chain (T network evaluations, DDPM's ancestral steps);
    ``"ddim"`` runs ``steps`` deterministic DDIM steps.

    Returns
    -------
    Tensor ``(B, 1, H, W)``: denoised images in [0, 1].
    """
    _check_images(noisy, "noisy")
    if sampler not in ("ddpm", "ddim"):
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    if sampler == "ddpm" and steps not in (None, schedule.T):
        raise ValueError(
            f"DDPM visits every step: steps must be None or T={schedule.T}, got {steps}"
        )
    device = _model_device(model, device)
    schedule = schedule.to(device)
    y = to_signed(noisy.to(device))
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(y.shape, generator=gen).to(device)
    ts = (torch.arange(schedule.T - 1, -1, -1) if sampler == "ddpm"
          else ddim_timesteps(schedule.T, steps or 20, spacing="trailing"))  # fmt: skip
    t_prevs = torch.cat([ts[1:], torch.tensor([-1])])
    was = model.training
    model.eval()
    for t, t_prev in tqdm(
        list(zip(ts.tolist(), t_prevs.tolist(), strict=True)), disable=not progress, desc=sampler
    ):
        tb = torch.full((y.shape[0],), t, device=device, dtype=torch.long)
        eps = model(torch.cat([x, y], dim=1), tb)
        if sampler == "ddpm":
            z = torch.randn(y.shape, generator=gen).to(device) if t > 0 else torch.zeros_like(x)
            x = ddpm_step(eps, tb, x, schedule, noise=z, clip_x0=clip_x0)
        else:
            x = ddim_step(eps, tb, t_prev, x, schedule, clip_x0=clip_x0)
    model.train(was)
    return to_unit(x)


# ---------------------------------------------------------------------------------------------
# training


SigmaFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""``sigma_fn(clean, generator) -> σ``: the noise levels ``(B, 1, H, W)`` of a batch of clean
images in [0, 1] (image units)."""


def _batch_loss(
    model: nn.Module,
    kind: str,
    x0: torch.Tensor,
    sigma: torch.Tensor,
    schedule: Schedule,
    gen: torch.Generator,
) -> torch.Tensor:
    """The loss of one batch (x0 in [0, 1], σ in image units)."""
    device = x0.device
    b = x0.shape[0]
    xs = to_signed(x0)
    eps_y = torch.randn(x0.shape, generator=gen).to(device)
    y = xs + 2 * sigma * eps_y  # the noisy image, model units
    if kind == "conditional":
        t = torch.randint(0, schedule.T, (b,), generator=gen).to(device)
        noise = torch.randn(x0.shape, generator=gen).to(device)
        x_t = q_sample(xs, t, noise, schedule)  # noise independent of y's
        return F.mse_loss(model(torch.cat([x_t, y], 1), t), noise)
    t_star = time_map(sigma, schedule).to(device)  # (B, H, W)
    top = t_star.amax(dim=(-2, -1), keepdim=True)
    offset = torch.rand((b, 1, 1), generator=gen).to(device) * (top + 1)
    t = (t_star - offset).clamp(min=-1)  # a time map the reverse process visits
    noise = torch.randn(x0.shape, generator=gen).to(device)
    x_t, target = bridge_sample(xs, eps_y, t, t_star, schedule, noise)
    live = (t > -1).to(x0.dtype)[:, None]  # clean pixels have nothing to predict
    err = (model(torch.cat([x_t, y], 1), t) - target).pow(2) * live
    return err.sum() / live.sum().clamp(min=1) / x0.shape[1]


def train(
    model: nn.Module,
    images: torch.Tensor,
    *,
    kind: str,
    sigma_fn: SigmaFn,
    schedule: Schedule,
    steps: int,
    batch_size: int = 16,
    lr: float = 4e-3,
    ema_decay: float = 0.995,
    warmup: int = 50,
    constant_share: float = 0.0,
    grad_clip: float | None = 1.0,
    checkpoint_path: str | Path | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a denoiser on clean ``images`` with noise drawn afresh for every batch.

    ``kind="conditional"``: the SR3-style conditional DDPM, L = ‖ε − ε_θ([x_t, y], t)‖² with
    x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε and ε independent of y's noise. ``kind="svnr"``: per image a time
    map t = max(t* − u, −1) with u ~ U(0, max t* + 1) (the maps the reverse process visits),
    x_t from :func:`bridge_sample`, L = ‖ε̃ − ε_θ([x_t, y], t)‖² over the pixels not yet clean.

    Parameters
    ----------
    model : nn.Module
        :func:`make_unet` (two input channels, one output).
    images : Tensor ``(N, 1, H, W)`` in [0, 1]
        Clean training images.
    kind : {"conditional", "svnr"}
    sigma_fn : callable
        ``sigma_fn(clean_batch, generator) -> σ (B, 1, H, W)``, the noise levels of a batch.
    schedule : Schedule
    steps, batch_size, lr, ema_decay, warmup, grad_clip : the optimisation (AdamW, warm-up then
        cosine decay, EMA of the weights).
    constant_share : float
        Share of each batch whose map is replaced by one level (its root-mean-square): white
        noise of the same power.
    checkpoint_path : str or Path, optional
        A finished run is saved there (safetensors, atomically) and loaded instead of training
        when it exists with the same settings.
    seed : int
        Seed of every draw (batches, noise maps, noise, times).
    device : optional
        Default: the model's.
    progress : bool

    Returns
    -------
    helpers.diffusion_training.TrainResult
        ``.ema`` is the network to denoise with; ``.seconds`` the training time (also when
        loaded).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    _check_images(images, "images")
    if images.shape[1] != 1 or float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError(
            f"images must be (N, 1, H, W) in [0, 1], got shape {tuple(images.shape)} and range "
            f"[{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not 0 <= constant_share <= 1:
        raise ValueError(f"constant_share must be in [0, 1], got {constant_share}")
    device = _model_device(model, device)
    model.to(device).train()
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    meta = {"kind": kind, "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
            "T": schedule.T, "constant_share": constant_share}  # fmt: skip
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        saved = checkpoint.load_training_state(checkpoint_path, model=model, ema=ema)
        if {k: saved.get(k) for k in meta} != meta:
            raise ValueError(
                f"checkpoint {checkpoint_path} holds a run with { ({k: saved.get(k) for k in meta}) }, "
                f"not {meta}; delete it or pass another path"
            )
        model.eval()
        history = saved["extra"].get("loss_history", torch.empty(0)).tolist()
        return TrainResult(model, ema, history, steps, steps, float(saved.get("seconds", 0.0)))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    data = images.to(device)
    schedule = schedule.to(device)
    history: list[float] = []
    began = time.perf_counter()
    bar = tqdm(range(steps), disable=not progress, desc=f"train {kind}")
    for step in bar:
        x0 = data[torch.randint(0, data.shape[0], (batch_size,), generator=gen).to(device)]
        sigma = sigma_fn(x0, gen).to(device)
        if constant_share > 0:
            flat = torch.rand(batch_size, generator=gen).to(device) < constant_share
            rms = sigma.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().expand_as(sigma)
            sigma = torch.where(flat[:, None, None, None], rms, sigma)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr, steps=steps, warmup=warmup)
        loss = _batch_loss(model, kind, x0, sigma, schedule, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        ema_update(ema, model, ema_decay_at(step, ema_decay))
        history.append(loss.item())
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history[-50:]) / len(history[-50:]):.4f}")
    seconds = time.perf_counter() - began
    if checkpoint_path is not None:
        checkpoint.save_training_state(
            checkpoint_path, model=model, step=steps, ema=ema,
            extra={"loss_history": torch.tensor(history, dtype=torch.float64)},
            meta={**meta, "seconds": seconds},
        )  # fmt: skip
    model.eval()
    logger.info("trained %s denoiser: %d steps in %.1f s", kind, steps, seconds)
    return TrainResult(model, ema, history, steps, 0, seconds)
