"""The autoencoder of latent diffusion: images to a small latent and back, and the scale factor.

Rombach et al. (CVPR 2022) run diffusion not on pixels but on the latent of an autoencoder that
downsamples by a factor ``f`` (Stable Diffusion v1: ``f = 8``, 4 channels, so a 512² image becomes
a 4 × 64 × 64 latent). Its encoder outputs a diagonal Gaussian q(z | x) = N(μ(x), σ²(x)); the
training loss is a reconstruction term plus a small weight times KL(q(z | x) ‖ N(0, I)), which
keeps the latent from drifting to arbitrary scales without costing much detail. Here diffusers'
``AutoencoderKL`` with a small config is trained on histology patches (:func:`train_autoencoder`,
MSE + ``kl_weight`` × KL per pixel; the paper adds a perceptual loss and a patch discriminator).

The latent's spread is whatever the training made it. Diffusion assumes data of about unit
variance, so latents are multiplied by a **scale factor** ``1 / std(z)`` measured on data
(:func:`scale_factor`): Stable Diffusion's 0.18215 is exactly this number for its autoencoder.
diffusers keeps it in ``vae.config.scaling_factor``; :func:`encode` multiplies by it,
:func:`decode` divides.

References
----------
.. [1] R. Rombach, A. Blattmann, D. Lorenz, P. Esser, B. Ommer, "High-Resolution Image Synthesis
   with Latent Diffusion Models", CVPR 2022.
.. [2] D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

Examples
--------
>>> import torch
>>> from helpers import latent
>>> cfg = latent.AutoencoderConfig.preset("smoke")
>>> vae = latent.make_autoencoder(cfg, seed=0)
>>> z = latent.encode(vae, torch.rand(2, 3, cfg.size, cfg.size))
>>> tuple(z.shape), cfg.factor, cfg.compression()
((2, 4, 4, 4), 4, 12.0)
>>> tuple(latent.decode(vae, z).shape)
(2, 3, 16, 16)
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint, runtime
from .optim import lr_at
from .runtime import Presets, seeded

logger = logging.getLogger(__name__)

__all__ = [
    "AutoencoderConfig",
    "autoencoder_loss",
    "decode",
    "encode",
    "load_or_train_autoencoder",
    "make_autoencoder",
    "scale_factor",
    "train_autoencoder",
]

SD_SCALE_FACTOR = 0.18215
"""Stable Diffusion v1's latent scale factor: 1 / std of its autoencoder's latents."""


@dataclass(frozen=True)
class AutoencoderConfig(Presets):
    """A small ``AutoencoderKL`` and its training.

    Attributes
    ----------
    size : int
        Image side in pixels (RGB images).
    channels : tuple of int
        ``block_out_channels``: one entry per resolution; the latent is ``2**(len − 1)`` times
        smaller per side (the factor ``f``).
    latent_channels : int
        Channels of the latent (4 in Stable Diffusion).
    layers_per_block : int
        Residual blocks per resolution in the encoder (one more in the decoder).
    kl_weight : float
        Weight of KL(q(z|x) ‖ N(0, I)) per pixel against the per-pixel MSE (Stable Diffusion:
        1e-6 against its reconstruction loss).
    steps, batch_size, lr : int, int, float
        AdamW steps, images per batch, peak learning rate (warm-up, then cosine decay).
    """

    size: int = 32
    channels: tuple[int, ...] = (8, 16, 32)
    latent_channels: int = 4
    layers_per_block: int = 1
    kl_weight: float = 1e-6
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3

    def __post_init__(self) -> None:
        for name in ("size", "latent_channels", "layers_per_block", "steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"AutoencoderConfig.{name} must be a positive int, got {v!r}")
        if not self.channels or not all(isinstance(c, int) and c >= 1 for c in self.channels):
            raise ValueError(
                f"AutoencoderConfig.channels must be positive ints, got {self.channels!r}"
            )
        if self.size % self.factor:
            raise ValueError(
                f"AutoencoderConfig.size={self.size} is not divisible by the downsampling factor "
                f"{self.factor} (2 ** (len(channels) − 1) of channels {self.channels})"
            )
        if self.kl_weight < 0 or not self.lr > 0:
            raise ValueError(f"need kl_weight ≥ 0 and lr > 0, got {self.kl_weight}, {self.lr}")

    STEP_FIELDS: ClassVar[tuple[str, ...]] = ("steps",)
    """Iteration counts scaled by ``COURSE_STEP_SCALE`` (:meth:`helpers.runtime.Presets.preset`)."""

    @classmethod
    def presets(cls) -> dict[str, AutoencoderConfig]:
        """One preset per profile (use ``AutoencoderConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(size=16, channels=(8, 8, 8), steps=4, batch_size=8),
            "laptop": cls(),
            "gpu": cls(size=64, channels=(32, 64, 128, 128), steps=6000, batch_size=128, lr=1e-3),
        }

    @property
    def factor(self) -> int:
        """The downsampling factor ``f`` per side."""
        return 2 ** (len(self.channels) - 1)

    @property
    def latent_size(self) -> int:
        """Side of the latent."""
        return self.size // self.factor

    def compression(self, in_channels: int = 3) -> float:
        """Values in an image over values in its latent: ``C·H·W / (c·(H/f)·(W/f))``."""
        return in_channels * self.size**2 / (self.latent_channels * self.latent_size**2)


def _groups(channels: tuple[int, ...]) -> int:
    """The largest GroupNorm group count (≤ 32) that divides every block's channels."""
    return next(g for g in (32, 16, 8, 4, 2, 1) if all(c % g == 0 for c in channels))


def make_autoencoder(
    config: AutoencoderConfig, *, in_channels: int = 3, seed: int | None = None
) -> Any:
    """A diffusers ``AutoencoderKL`` of ``config``, initialised from ``seed``.

    ``scaling_factor`` starts at 1; set it from data with :func:`scale_factor` and
    ``vae.register_to_config(scaling_factor=…)``.
    """
    from diffusers import AutoencoderKL

    n = len(config.channels)
    with seeded(seed):
        return AutoencoderKL(
            in_channels=in_channels,
            out_channels=in_channels,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(config.channels),
            layers_per_block=config.layers_per_block,
            latent_channels=config.latent_channels,
            norm_num_groups=_groups(tuple(config.channels)),
            sample_size=config.size,
            scaling_factor=1.0,
        )


def _check_images(images: torch.Tensor, vae: nn.Module | None = None) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be an (N, C, H, W) tensor in [0, 1], got {got}")
    if vae is not None and images.shape[1] != vae.config.in_channels:
        raise ValueError(
            f"images have {images.shape[1]} channels, the autoencoder takes {vae.config.in_channels}"
        )
    factor = 2 ** (len(vae.config.block_out_channels) - 1) if vae is not None else 1
    if images.shape[-1] % factor or images.shape[-2] % factor:
        raise ValueError(
            f"image size {images.shape[-2]}×{images.shape[-1]} is not divisible by the "
            f"autoencoder's factor {factor}"
        )


def autoencoder_loss(
    vae: nn.Module,
    x: torch.Tensor,
    *,
    kl_weight: float,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MSE of the reconstruction of a sampled latent, plus ``kl_weight`` × KL per pixel.

    z = μ + σ·ε (the reparameterisation trick) is decoded; KL(N(μ, σ²) ‖ N(0, I)) =
    ½ Σ (μ² + σ² − 1 − log σ²) is summed over the latent and divided by the number of pixel
    values, so ``kl_weight`` weighs it against the per-value MSE (as Stable Diffusion's 1e-6 does
    against its per-image sums).

    Parameters
    ----------
    vae : diffusers ``AutoencoderKL``
    x : Tensor ``(B, C, H, W)`` in ``[-1, 1]``
    kl_weight : float
    generator : torch.Generator, optional
        Draws ε.

    Returns
    -------
    (loss, mse, kl) : three 0-d tensors (kl per pixel value, unweighted)
    """
    posterior = vae.encode(x).latent_dist
    z = posterior.sample(generator=generator)  # μ + σ·ε
    reconstruction = vae.decode(z).sample
    mse = F.mse_loss(reconstruction, x)
    kl = posterior.kl().mean() / x[0].numel()  # diffusers sums over the latent
    return mse + kl_weight * kl, mse, kl


def train_autoencoder(
    images: torch.Tensor,
    config: AutoencoderConfig,
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, list[float]]]:
    """Train :func:`make_autoencoder` on ``images`` with :func:`autoencoder_loss`.

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)`` in ``[0, 1]``
        Training images (random 90° rotations and flips are applied to each batch).
    config : AutoencoderConfig
    seed : int
        Seed of the initialisation and of every draw (batches, augmentations, ε).
    device : optional
        Default :func:`helpers.runtime.detect_device`.
    progress : bool

    Returns
    -------
    (vae in eval mode, history) : history holds ``"loss"``, ``"mse"``, ``"kl"`` per step and
    ``"seconds"`` (one entry, the training wall time).
    """
    _check_images(images)
    if images.shape[-1] != config.size or images.shape[-2] != config.size:
        raise ValueError(
            f"images are {images.shape[-2]}×{images.shape[-1]}, the config says {config.size}"
        )
    device = torch.device(device) if device is not None else runtime.detect_device()
    vae = make_autoencoder(config, in_channels=images.shape[1], seed=seed).to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=config.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    data = images.to(device) * 2 - 1  # [-1, 1]
    history: dict[str, list[float]] = {"loss": [], "mse": [], "kl": []}
    began = time.perf_counter()
    bar = tqdm(range(config.steps), disable=not progress, desc="autoencoder")
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, config.lr, steps=config.steps, warmup=min(50, config.steps // 5))
        idx = torch.randint(0, len(data), (config.batch_size,), generator=gen).to(device)
        k = int(torch.randint(4, (1,), generator=gen))
        x = torch.rot90(data[idx], k, dims=(2, 3))
        loss, mse, kl = autoencoder_loss(vae, x, kl_weight=config.kl_weight, generator=gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        for name, value in (("loss", loss), ("mse", mse), ("kl", kl)):
            history[name].append(value.item())
        if step % 10 == 0 or step == config.steps - 1:
            bar.set_postfix(mse=f"{mse.item():.4f}", kl=f"{kl.item():.3g}")
    history["seconds"] = [time.perf_counter() - began]
    return vae.eval(), history


def load_or_train_autoencoder(
    images: torch.Tensor,
    config: AutoencoderConfig,
    *,
    seed: int = 0,
    cache_key: tuple = (),
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[Any, dict[str, list[float]]]:
    """:func:`train_autoencoder`, or the same model read back from its safetensors cache file.

    The file is ``runtime.cache_path("06_autoencoder", config, seed, *cache_key)``; ``cache_key``
    must name the training images (the notebook passes their recipe). The history (and the
    training wall time) is stored with the weights, so a cached model reports them too.
    """
    path = runtime.cache_path("06_autoencoder", config, seed, *cache_key)
    device = torch.device(device) if device is not None else runtime.detect_device()
    if path.exists():
        tensors, meta = checkpoint.read(path)
        vae = make_autoencoder(config, in_channels=int(meta["in_channels"]))
        vae.load_state_dict(tensors)
        logger.info("loaded the autoencoder from %s", path)
        return vae.to(device).eval(), {k: list(v) for k, v in meta["history"].items()}
    vae, history = train_autoencoder(images, config, seed=seed, device=device, progress=progress)
    checkpoint.atomic_save(
        vae.state_dict(),
        path,
        meta={"config": asdict(config), "in_channels": images.shape[1], "history": history},
    )
    return vae, history


@torch.no_grad()
def encode(
    vae: nn.Module,
    images: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Latents of ``images`` in ``[0, 1]``, multiplied by ``vae.config.scaling_factor``.

    Parameters
    ----------
    vae : diffusers ``AutoencoderKL``
    images : Tensor ``(N, C, H, W)`` in ``[0, 1]``
    generator : torch.Generator, optional
        Draw z = μ + σ·ε from q(z | x) (as Stable Diffusion's training does); without one the
        mean μ is returned.
    batch_size : int

    Returns
    -------
    Tensor ``(N, c, H/f, W/f)`` on the CPU
    """
    _check_images(images, vae)
    device = next(vae.parameters()).device
    scale = float(vae.config.scaling_factor)
    out = []
    for k in range(0, len(images), batch_size):
        posterior = vae.encode(images[k : k + batch_size].to(device) * 2 - 1).latent_dist
        z = posterior.sample(generator=generator) if generator is not None else posterior.mode()
        out.append((z * scale).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def decode(vae: nn.Module, latents: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """Images in ``[0, 1]`` ``(N, C, H, W)`` from latents scaled as :func:`encode` returns them.

    Raises
    ------
    ValueError
        Latents that are not ``(N, latent_channels, h, w)``.
    """
    channels = vae.config.latent_channels
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.shape[1] != channels:
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"latents must be (N, {channels}, h, w) for this autoencoder, got {got}")
    device = next(vae.parameters()).device
    scale = float(vae.config.scaling_factor)
    out = [
        ((vae.decode(latents[k : k + batch_size].to(device) / scale).sample + 1) / 2)
        .clamp(0, 1)
        .float()
        .cpu()
        for k in range(0, len(latents), batch_size)
    ]
    return torch.cat(out)


def scale_factor(latents: torch.Tensor) -> float:
    """``1 / std`` of unscaled latents over every value: the factor that gives them unit variance.

    Stable Diffusion's 0.18215 is this number measured on its autoencoder's latents of a batch of
    training images (Rombach et al., appendix "scale_by_std").

    Examples
    --------
    >>> round(scale_factor(torch.randn(64, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 5), 2)
    0.2
    """
    if not isinstance(latents, torch.Tensor) or latents.numel() < 2:
        raise ValueError("latents must be a tensor with at least two values")
    std = float(latents.float().std())
    if not std > 0:
        raise ValueError("latents have zero spread: no scale factor makes them unit variance")
    return 1.0 / std
