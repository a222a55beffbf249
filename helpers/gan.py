"""A small DCGAN-style GAN: the baseline that diffusion models are compared with.

The generator maps a latent vector ``z ~ N(0, I)`` to a 4×4 feature map and doubles the
resolution with (nearest upsampling → 3×3 conv → BatchNorm → ReLU) blocks up to 32×32 or 64×64,
ending in ``tanh`` (images in [-1, 1]). The discriminator mirrors it with stride-2 convolutions
and LeakyReLU(0.2); every layer is spectrally normalised, which keeps it Lipschitz and training
stable with the hinge loss (or the non-saturating loss, optionally with an R1 penalty). Adam with
``lr = 2e-4, betas = (0.5, 0.999)`` as in DCGAN; an exponential moving average (EMA) of the
generator's weights gives smoother samples. This module holds the networks, the losses and
sampling, and the training loop :func:`train_gan`: one discriminator step (push ``D(x)`` up on
real images and ``D(G(z))`` down on fakes, with an optional R1 penalty on real images), then one
generator step (make ``D`` score the fakes as real). Every random draw comes from one seeded
``torch.Generator`` whose state goes into the checkpoint, so an interrupted run resumed from its
checkpoint ends with the same weights as an uninterrupted one (on CPU).

References
----------
.. [1] A. Radford, L. Metz, S. Chintala, "Unsupervised Representation Learning with Deep
   Convolutional Generative Adversarial Networks", ICLR 2016 (DCGAN).
.. [2] T. Miyato, T. Kataoka, M. Koyama, Y. Yoshida, "Spectral Normalization for Generative
   Adversarial Networks", ICLR 2018 (spectral norm, hinge loss).
.. [3] L. Mescheder, A. Geiger, S. Nowozin, "Which Training Methods for GANs do actually
   Converge?", ICML 2018 (R1 penalty).

Examples
--------
>>> import torch
>>> from helpers import gan
>>> cfg = gan.GANConfig.preset("smoke")
>>> g, d = gan.Generator(cfg), gan.Discriminator(cfg)
>>> x = g(torch.randn(2, cfg.latent_dim))
>>> tuple(x.shape), tuple(d(x).shape)
((2, 1, 32, 32), (2,))
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm
from tqdm.auto import tqdm

from . import checkpoint
from .optim import ema_decay_at, ema_update
from .runtime import Presets, detect_device, seeded
from .validation import as_device, check_finite, check_floating, check_int, check_seed

logger = logging.getLogger(__name__)

__all__ = [
    "LOSSES",
    "Discriminator",
    "GANConfig",
    "Generator",
    "TrainedGAN",
    "build",
    "discriminator_loss",
    "generator_loss",
    "sample",
    "train_gan",
]

LOSSES = ("hinge", "nonsaturating")


@dataclass(frozen=True)
class GANConfig(Presets):
    """Architecture and training settings of the GAN.

    Attributes
    ----------
    image_size : int
        Side of the square images: 32 or 64.
    channels : int
        Image channels (1 for MRI slices).
    latent_dim : int
        Size of ``z``.
    g_width, d_width : int
        Channels of the generator's last block and the discriminator's first; they double at
        each halving of the resolution.
    loss : str
        ``"hinge"`` or ``"nonsaturating"``.
    r1_gamma : float
        Weight γ of the R1 penalty ``γ/2 · E‖∇D(x)‖²`` on real images (0 = off).
    lr : float
        Adam learning rate of both networks.
    betas : tuple of float
        Adam betas.
    ema_decay : float
        Decay of the generator's weight average (0 = no EMA); during the first steps the decay
        is ``min(ema_decay, (1 + step) / (10 + step))`` so the average forgets the initial weights.
    steps, batch_size, checkpoint_every : int
        Training length, images per step, and how often a checkpoint is written.
    """

    image_size: int = 32
    channels: int = 1
    latent_dim: int = 64
    g_width: int = 32
    d_width: int = 32
    loss: str = "hinge"
    r1_gamma: float = 0.0
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    steps: int = 3000
    batch_size: int = 64
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.image_size not in (32, 64):
            raise ValueError(f"image_size must be 32 or 64, got {self.image_size}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        for name in ("channels", "latent_dim", "g_width", "d_width", "steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ValueError(
                f"checkpoint_every must be a positive int, got {self.checkpoint_every!r}"
            )
        if not self.lr > 0 or not self.r1_gamma >= 0 or not 0 <= self.ema_decay < 1:  # NaN too
            raise ValueError(
                f"need lr > 0, r1_gamma ≥ 0, 0 ≤ ema_decay < 1; got lr={self.lr}, "
                f"r1_gamma={self.r1_gamma}, ema_decay={self.ema_decay}"
            )
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas}")

    @property
    def n_blocks(self) -> int:
        """Number of resolution doublings from 4×4 to ``image_size``."""
        return int(math.log2(self.image_size // 4))

    @classmethod
    def presets(cls) -> dict[str, GANConfig]:
        """One preset per profile (use ``GANConfig.preset(profile, **overrides)``)."""
        return {
            "smoke": cls(
                g_width=8, d_width=8, latent_dim=16, steps=20, batch_size=16, checkpoint_every=10
            ),
            "laptop": cls(g_width=16, d_width=16, latent_dim=64, steps=1500, batch_size=32),
            "gpu": cls(
                image_size=64,
                g_width=64,
                d_width=64,
                latent_dim=128,
                steps=20000,
                batch_size=128,
                checkpoint_every=2000,
            ),
        }


class Generator(nn.Module):
    """``z (B, latent_dim)`` → images ``(B, channels, size, size)`` in [-1, 1].

    Channels ``8·g_width`` (64×64) or ``4·g_width`` (32×32) at 4×4, halved at each doubling of
    the resolution down to ``g_width`` at half the image size; a last upsample + conv gives the
    image, as DCGAN's last transposed convolution.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        n = config.n_blocks
        widths = [config.g_width * 2 ** (n - 1 - i) for i in range(n)]  # at 4, 8, …, size/2
        self.project = nn.Linear(config.latent_dim, widths[0] * 16)
        self.start = nn.Sequential(nn.BatchNorm2d(widths[0]), nn.ReLU())
        self.blocks = nn.Sequential(
            *[
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c_out),
                    nn.ReLU(),
                )
                for c_in, c_out in zip(widths[:-1], widths[1:], strict=True)
            ]
        )
        self.to_image = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(widths[-1], config.channels, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], -1, 4, 4)  # (B, C0, 4, 4)
        x = self.blocks(self.start(x))  # (B, g_width, size/2, size/2)
        return torch.tanh(self.to_image(x))  # (B, channels, size, size)


class Discriminator(nn.Module):
    """Images ``(B, channels, size, size)`` in [-1, 1] → one realness score per image ``(B,)``.

    Stride-2 4×4 convolutions (spectrally normalised) from ``d_width`` channels at half the
    image size, doubling the channels at each halving down to 4×4, then a linear layer.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = config
        widths = [config.d_width * 2**i for i in range(config.n_blocks)]  # at size/2, …, 4
        layers: list[nn.Module] = []
        for c_in, c_out in zip([config.channels, *widths[:-1]], widths, strict=True):
            layers += [
                spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)),
                nn.LeakyReLU(0.2),
            ]
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(widths[-1] * 16, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)  # (B, C, 4, 4)
        return self.head(h.flatten(1)).squeeze(1)  # (B,)


def build(config: GANConfig, *, seed: int = 0) -> tuple[Generator, Discriminator]:
    """Generator and discriminator with weights initialised from ``seed`` (global RNG untouched)."""
    with seeded(seed):
        return Generator(config), Discriminator(config)


def discriminator_loss(
    real_scores: torch.Tensor, fake_scores: torch.Tensor, loss: str
) -> torch.Tensor:
    """Hinge: ``E[max(0, 1 − D(x))] + E[max(0, 1 + D(G(z)))]``; non-saturating: softplus form."""
    if loss == "hinge":
        return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
    return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()


def generator_loss(fake_scores: torch.Tensor, loss: str) -> torch.Tensor:
    """Hinge: ``−E[D(G(z))]``; non-saturating: ``E[softplus(−D(G(z)))] = −E[log σ(D(G(z)))]``."""
    if loss == "hinge":
        return -fake_scores.mean()
    return F.softplus(-fake_scores).mean()


@torch.no_grad()
def sample(
    generator: Generator,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """``n`` images from ``generator`` (eval mode), ``(n, C, H, W)`` float32 in [0, 1] on CPU.

    Examples
    --------
    >>> g, _ = build(GANConfig.preset("smoke"))
    >>> x = sample(g, 3, seed=1)
    >>> tuple(x.shape), bool(((x >= 0) & (x <= 1)).all())
    ((3, 1, 32, 32), True)
    """
    check_int(n, "n", minimum=1)
    check_int(batch_size, "batch_size", minimum=1)
    check_seed(seed)
    dev = as_device(device) or next(generator.parameters()).device
    was_training = generator.training
    generator.eval().to(dev)
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.config.latent_dim, generator=rng)
    out = torch.cat(
        [generator(z[i : i + batch_size].to(dev)).cpu() for i in range(0, n, batch_size)]
    )
    generator.train(was_training)
    return ((out + 1) / 2).clamp(0, 1)


# --------------------------------------------------------------------------------------------
# training


@dataclass
class TrainedGAN:
    """What :func:`train_gan` returns.

    Attributes
    ----------
    generator : Generator
        The generator to sample from (the EMA weights when ``ema_decay > 0``), in eval mode.
    discriminator : Discriminator
    history : dict of str to list of float
        ``"loss_d"`` and ``"loss_g"`` per step (over the whole run, resumed steps included).
    steps : int
        Completed optimisation steps.
    seconds : float
        Training wall time of all the steps, those of earlier (resumed or cached) runs included.
    config : GANConfig
    """

    generator: Generator
    discriminator: Discriminator
    history: dict[str, list[float]] = field(default_factory=dict)
    steps: int = 0
    seconds: float = 0.0
    config: GANConfig = field(default_factory=GANConfig)


def _check_images(images: torch.Tensor, config: GANConfig) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (N, C, H, W), got {type(images).__name__}")
    want = (config.channels, config.image_size, config.image_size)
    if images.ndim != 4 or tuple(images.shape[1:]) != want:
        raise ValueError(
            f"images must have shape (N, {', '.join(map(str, want))}) for this config, got {tuple(images.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)}); need at least one image")
    check_floating(images, "images", "scale integer images into [0, 1], e.g. images.float() / 255")
    check_finite(images, "images")
    low, high = float(images.min()), float(images.max())
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(
            f"images must lie in [0, 1], got values from {low:.4g} to {high:.4g} (scale them first)"
        )


def train_gan(
    images: torch.Tensor,
    *,
    config: GANConfig | None = None,
    steps: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool | None = None,
    progress: bool = True,
) -> TrainedGAN:
    """Train the GAN on ``images`` (alternating one discriminator and one generator step).

    Parameters
    ----------
    images : Tensor ``(N, C, H, W)``
        Training images in [0, 1], of the config's ``channels`` and ``image_size``.
    config : GANConfig, optional
        Default ``GANConfig()``; ``steps``, ``batch_size`` and ``checkpoint_every`` override it.
    steps : int, optional
        Total number of steps to reach (a resumed run continues up to it).
    batch_size : int, optional
        Images per step, drawn with replacement.
    seed : int
        Seeds the weights, the minibatches and the latents.
    device : str or torch.device, optional
        Default: ``runtime.detect_device()``.
    checkpoint_path : str or Path, optional
        A ``.safetensors`` file written every ``checkpoint_every`` steps and at the end.
    resume : bool, optional
        Continue from ``checkpoint_path`` if it exists (same config required). ``None``
        (default) resumes whenever a checkpoint path is given, ``True`` also insists on one,
        ``False`` starts afresh and overwrites it (the rule of
        :func:`helpers.diffusion_training.train`).
    progress : bool
        Show a progress bar.

    Returns
    -------
    TrainedGAN
        Interrupted-and-resumed training gives the same weights as an uninterrupted run (CPU).

    Examples
    --------
    >>> import torch
    >>> cfg = GANConfig.preset("smoke")
    >>> out = train_gan(torch.rand(8, 1, 32, 32), config=cfg, steps=2, device="cpu", progress=False)
    >>> out.steps, len(out.history["loss_d"])
    (2, 2)
    """
    config = config or GANConfig()
    overrides = {
        k: v
        for k, v in (
            ("steps", steps),
            ("batch_size", batch_size),
            ("checkpoint_every", checkpoint_every),
        )
        if v is not None
    }
    config = replace(config, **overrides)
    _check_images(images, config)
    check_seed(seed)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    dev = as_device(device) or detect_device()
    data = images.detach().float().cpu() * 2 - 1  # [-1, 1], as the generator's tanh
    g_net, d_net = build(config, seed=seed)
    g_net, d_net = g_net.to(dev), d_net.to(dev)
    ema = copy.deepcopy(g_net).requires_grad_(False) if config.ema_decay > 0 else None
    opt_g = torch.optim.Adam(g_net.parameters(), lr=config.lr, betas=config.betas)
    opt_d = torch.optim.Adam(d_net.parameters(), lr=config.lr, betas=config.betas)
    rng = torch.Generator().manual_seed(seed)
    nets = nn.ModuleDict({"generator": g_net, "discriminator": d_net})
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    history: dict[str, list[float]] = {"loss_d": [], "loss_g": []}
    start, earlier_seconds = 0, 0.0
    path = Path(checkpoint_path) if checkpoint_path is not None else None
    meta_config = {
        k: v for k, v in asdict(config).items() if k not in ("steps", "checkpoint_every")
    }
    meta = None
    if path is not None and resume is not False and path.exists():
        try:
            meta = checkpoint.load_training_state(
                path, model=nets, ema=ema, generators={"data": rng}, optimizers=optimizers,
                expect={"config": meta_config},
            )  # fmt: skip
        except checkpoint.CheckpointError as err:
            if err.moved_to is None:  # the user's own file: stop and name it
                raise
            logger.warning("training from scratch: %s", err)  # a cache file: made again
    if meta is not None:
        start = int(meta["step"])
        earlier_seconds = float(meta.get("seconds", 0.0))
        history = {k: meta["extra"][k].tolist() for k in history}
        logger.info("resumed GAN training from %s at step %d", path, start)

    def save(step: int, elapsed: float) -> None:
        if path is not None:
            extra = {k: torch.tensor(v, dtype=torch.float64) for k, v in history.items()}
            checkpoint.save_training_state(
                path,
                model=nets,
                step=step,
                ema=ema,
                generators={"data": rng},
                extra=extra,
                optimizers=optimizers,
                meta={"config": meta_config, "seconds": elapsed},
            )

    g_net.train()
    d_net.train()
    began = time.perf_counter()
    bar = tqdm(total=config.steps, initial=start, disable=not progress, desc="GAN")
    for step in range(start, config.steps):
        real = data[torch.randint(data.shape[0], (config.batch_size,), generator=rng)].to(dev)
        z_d = torch.randn(config.batch_size, config.latent_dim, generator=rng).to(dev)
        z_g = torch.randn(config.batch_size, config.latent_dim, generator=rng).to(dev)
        # discriminator step: push D(real) up and D(fake) down
        real.requires_grad_(config.r1_gamma > 0)
        real_scores = d_net(real)
        loss_d = discriminator_loss(real_scores, d_net(g_net(z_d).detach()), config.loss)
        if config.r1_gamma > 0:  # R1: γ/2 · E‖∇_x D(x)‖² on real images
            (grad,) = torch.autograd.grad(real_scores.sum(), real, create_graph=True)
            loss_d = loss_d + config.r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        # generator step: make D score the fakes as real
        loss_g = generator_loss(d_net(g_net(z_g)), config.loss)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        if ema is not None:
            ema_update(ema, g_net, ema_decay_at(step, config.ema_decay))
        history["loss_d"].append(float(loss_d.detach()))
        history["loss_g"].append(float(loss_g.detach()))
        if not (math.isfinite(history["loss_d"][-1]) and math.isfinite(history["loss_g"][-1])):
            raise FloatingPointError(
                f"GAN losses became non-finite at step {step + 1}: {loss_d}, {loss_g}"
            )
        bar.update(1)
        if step % 10 == 0 or step + 1 == config.steps:
            bar.set_postfix(
                loss_d=f"{history['loss_d'][-1]:.3f}", loss_g=f"{history['loss_g'][-1]:.3f}"
            )
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < config.steps:
            save(step + 1, earlier_seconds + time.perf_counter() - began)
    bar.close()
    total = earlier_seconds + (time.perf_counter() - began if start < config.steps else 0.0)
    if start < config.steps or (path is not None and not path.exists()):
        save(config.steps, total)
    final = ema if ema is not None else g_net
    return TrainedGAN(
        final.eval(),
        d_net.eval(),
        history,
        max(start, config.steps),
        total,
        config,
    )
