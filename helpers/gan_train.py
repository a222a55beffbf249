"""Training the GAN of :mod:`helpers.gan`: alternating discriminator and generator steps.

One discriminator step (push ``D(x)`` up on real images and ``D(G(z))`` down on fakes, with an
optional R1 penalty on real images), then one generator step (make ``D`` score the fakes as real),
both with Adam(2e-4, β = (0.5, 0.999)) as in DCGAN; an exponential moving average of the
generator's weights is what :func:`train_gan` hands back for sampling. Every random draw comes from
one seeded ``torch.Generator`` whose state goes into the checkpoint, so an interrupted run resumed
from its checkpoint ends with the same weights as an uninterrupted one (on CPU). Also reachable as
``helpers.gan.train_gan``.

References
----------
.. [1] A. Radford, L. Metz, S. Chintala, "Unsupervised Representation Learning with Deep
   Convolutional Generative Adversarial Networks", ICLR 2016 (DCGAN).
.. [2] L. Mescheder, A. Geiger, S. Nowozin, "Which Training Methods for GANs do actually
   Converge?", ICML 2018 (R1 penalty).

Examples
--------
>>> import torch
>>> from helpers import gan, gan_train
>>> cfg = gan.GANConfig.preset("smoke")
>>> out = gan_train.train_gan(torch.rand(8, 1, 32, 32), config=cfg, steps=2, device="cpu",
...                           progress=False)
>>> out.steps, tuple(gan.sample(out.generator, 2).shape)
(2, (2, 1, 32, 32))
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint, runtime
from .gan import Discriminator, GANConfig, Generator, build, discriminator_loss, generator_loss

logger = logging.getLogger(__name__)

__all__ = ["TrainedGAN", "train_gan"]


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
    resume: bool = True,
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
    resume : bool
        Continue from ``checkpoint_path`` if it exists (same config required).
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
    dev = torch.device(device) if device is not None else runtime.detect_device()
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
    if path is not None and resume and path.exists():
        meta = checkpoint.load_training_state(
            path, model=nets, ema=ema, generators={"data": rng}, optimizers=optimizers
        )
        saved = meta.get("config", {})
        saved = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
        if saved != meta_config:
            raise ValueError(
                f"checkpoint {path} was trained with config {saved}, not {meta_config}; pass resume=False or another path"
            )
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
            with torch.no_grad():
                decay = min(
                    config.ema_decay, (1 + step) / (10 + step)
                )  # warm-up: early steps count less
                for p_ema, p in zip(ema.parameters(), g_net.parameters(), strict=True):
                    p_ema.lerp_(p, 1 - decay)
                for b_ema, b in zip(ema.buffers(), g_net.buffers(), strict=True):
                    b_ema.copy_(b)
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
