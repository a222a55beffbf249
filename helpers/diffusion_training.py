"""Training a diffusion model: ε-prediction MSE, EMA of the weights, checkpoints and resume.

Any denoiser called as ``model(x, t, y=None, cond=None) -> ε̂`` trains here: the U-Nets of
:mod:`helpers.unet`, the embedding denoiser of :mod:`helpers.embedding_prior`.

:func:`train` minimises L_simple = E‖ε − ε_θ(√ᾱ_t x₀ + √(1−ᾱ_t) ε, t)‖² (Ho et al. 2020, eq. 14)
with t uniform over ``0 … T−1``. With ``labels`` or ``cond`` the condition is replaced by the null
condition a fraction ``cond_drop`` of the time, so the same network also learns the unconditional
model that classifier-free guidance needs (Ho & Salimans 2021). Every random draw (batch indices,
t, ε, condition dropping) comes from one seeded ``torch.Generator`` whose state is saved in the
checkpoint, so an interrupted run resumed with ``resume=True`` ends with the same weights as an
uninterrupted one.

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] J. Ho, T. Salimans, "Classifier-Free Diffusion Guidance", NeurIPS 2021 workshop.

Examples
--------
>>> import torch
>>> from helpers import diffusion, diffusion_training, unet
>>> net = unet.UNet(1, base_channels=8, channel_mults=(1,), attn_resolutions=())
>>> x = torch.rand(16, 1, 8, 8) * 2 - 1
>>> s = diffusion.Schedule.make("linear", T=100)
>>> result = diffusion_training.train(net, x, schedule=s, steps=3, batch_size=4, progress=False)
>>> len(result.loss_history)
3
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import checkpoint
from .diffusion import Schedule, drop_condition, q_sample
from .optim import LR_SCHEDULES, ema_decay_at, ema_update, lr_at, memory_format
from .validation import (
    as_device,
    check_choice,
    check_finite,
    check_floating,
    check_int,
    check_number,
    check_seed,
    check_tensor,
)

logger = logging.getLogger(__name__)

CHANNELS_LAST_FASTEST: dict[str, bool] = {"cpu": True}
"""Device type → whether :func:`train` runs faster in channels_last; types not listed train
contiguous. CPU: contiguous steps took 1.20–1.27× the CPU time of channels_last ones at the
laptop sizes, 1 thread (``benchmarks/memory_format.py``); CUDA and MPS: not measured."""

__all__ = ["TrainResult", "diffusion_loss", "train"]


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    model : nn.Module
        The trained network (the object passed in, updated in place).
    ema : nn.Module
        A copy holding the exponential moving average of the weights, in eval mode: sample with it.
    loss_history : list of float
        The training loss at every step (including steps done before a resume).
    steps : int
        Steps completed. ``resumed_from`` : int, the step loaded from a checkpoint (0 if none).
    seconds : float
        Training wall time of all the steps, those of earlier (resumed or cached) runs included.
    """

    model: nn.Module
    ema: nn.Module
    loss_history: list[float] = field(default_factory=list)
    steps: int = 0
    resumed_from: int = 0
    seconds: float = 0.0


def diffusion_loss(
    model: nn.Module,
    x0: torch.Tensor,
    schedule: Schedule,
    *,
    generator: torch.Generator | None = None,
    y: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_simple on one batch: t ~ U{0…T−1}, ε ~ N(0, I), MSE between ε and ε_θ(x_t, t).

    Parameters
    ----------
    model : nn.Module
        ``model(x, t, y=None, cond=None) -> ε̂``.
    x0 : Tensor ``(B, C, H, W)`` in ``[-1, 1]``
    schedule : Schedule
    generator : torch.Generator, optional
        CPU generator for t and ε (drawn on the CPU, then moved to ``x0``'s device).
    y, cond : optional
        Condition of each image (already dropped to null where wanted).
    t, noise : Tensor ``(B,)`` int64 and ``(B, C, H, W)``, optional
        Timesteps and ε drawn by the caller (a process's share of a batch drawn whole, when
        several processes train together); default: drawn here from ``generator``.

    Returns
    -------
    Tensor ``()``: the loss.
    """
    b = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.T, (b,), generator=generator)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator)
    t, noise = t.to(x0.device), noise.to(x0.device, x0.dtype)
    x_t = q_sample(x0, t, noise, schedule)
    return F.mse_loss(model(x_t, t, y=y, cond=cond).float(), noise.float())


def _check(
    model, images, labels, cond, steps, batch_size, lr, cond_drop, ema_decay, checkpoint_every,
    warmup, grad_clip, seed, check_range=True,
) -> None:  # fmt: skip
    check_tensor(images, "images", ndim=4, nonempty=True, layout="(N, C, H, W)")
    check_floating(
        images, "images", "scale integer images into [-1, 1] first, e.g. "
        "diffusion.to_signed(images.float() / 255)",
    )  # fmt: skip
    check_finite(images, "images")
    n = images.shape[0]
    if check_range and (float(images.min()) < -1.001 or float(images.max()) > 1.001):
        raise ValueError(
            f"images must lie in [-1, 1] (use diffusion.to_signed), got [{float(images.min()):.3g}, {float(images.max()):.3g}]"
        )
    for name, c in (("labels", labels), ("cond", cond)):
        if c is not None:
            check_tensor(c, name, nonempty=True)
            if c.shape[0] != n:
                raise ValueError(f"{name} has {c.shape[0]} rows for {n} images")
    if labels is not None:
        if labels.dtype != torch.long or labels.ndim != 1:
            raise TypeError(
                f"labels must be (N,) int64 class indices, got dtype {labels.dtype} and shape "
                f"{tuple(labels.shape)}"
            )
        classes = getattr(model, "num_classes", None)
        if classes and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(
                f"labels must lie in [0, {classes}) for a model with num_classes={classes}, got "
                f"values from {int(labels.min())} to {int(labels.max())}"
            )
    if cond is not None:
        check_floating(cond, "cond")
        check_finite(cond, "cond")
    for name, v in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
    ):
        check_int(v, name, minimum=1)
    check_int(warmup, "warmup", minimum=0)
    check_number(lr, "lr", low=0, low_open=True)
    check_number(cond_drop, "cond_drop", low=0, high=1, high_open=True)
    check_number(ema_decay, "ema_decay", low=0, high=1, high_open=True)
    check_number(grad_clip, "grad_clip", low=0, low_open=True, none_ok=True)
    check_seed(seed)


def train(
    model: nn.Module,
    images: torch.Tensor,
    *,
    schedule: Schedule,
    steps: int,
    batch_size: int = 64,
    lr: float = 2e-3,
    labels: torch.Tensor | None = None,
    cond: torch.Tensor | None = None,
    cond_drop: float = 0.1,
    ema_decay: float = 0.999,
    warmup: int = 100,
    lr_schedule: str = "cosine",
    schedule_steps: int | None = None,
    grad_clip: float | None = 1.0,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    channels_last: bool | None = None,
    accelerator: Any | None = None,
    precision: str = "float32",
    compile: bool = False,
    check_range: bool = True,
) -> TrainResult:
    """Train ``model`` to predict the noise added to ``images`` (DDPM's L_simple).

    Under Hugging Face ``accelerate`` (``accelerator=Accelerator()`` in a script started with
    ``accelerate launch --num_processes K``, or from a notebook with ``notebook_launcher``), K
    processes train together on K devices: every process draws the same whole batch of
    ``batch_size`` (indices, condition dropping, t, ε, from the same seed), each computes the loss
    of its ``batch_size / K`` share, and the gradients are averaged across processes — the same
    steps as one process with the same global batch, up to floating-point summation order.
    Checkpoints are written by the main process only.

    Parameters
    ----------
    model : nn.Module
        ``model(x, t, y=None, cond=None) -> ε̂``, e.g. :class:`helpers.unet.UNet`.
    images : Tensor ``(N, C, H, W)`` in ``[-1, 1]``
    schedule : Schedule
    steps : int
        Total optimisation steps (a resumed run continues up to this number).
    batch_size, lr : int, float
        Batch size and peak learning rate of AdamW.
    labels : Tensor ``(N,)`` int64, optional
        Class labels; ``cond`` : Tensor ``(N, D)``, optional, conditioning vectors.
    cond_drop : float
        Share of the batch whose condition is replaced by the null label / zero vector.
    ema_decay : float
        Decay of the weight average (with warm-up min(decay, (1 + k)/(10 + k)) at step k).
    warmup, lr_schedule : int, {"cosine", "constant"}
        Linear warm-up steps, then cosine decay to 10 % of ``lr`` or a constant rate.
    schedule_steps : int, optional
        Length of the learning-rate schedule (default ``steps``). Training to ``steps`` now and
        resuming later up to ``schedule_steps`` (with the same value) retraces one run of
        ``schedule_steps`` exactly, so its intermediate models can be evaluated on the way.
    grad_clip : float or None
        Clip the gradient norm.
    checkpoint_path : str or Path, optional
        Where to write safetensors checkpoints (atomically), every ``checkpoint_every`` steps
        and at the end.
    resume : bool, optional
        Continue from ``checkpoint_path`` when it exists; it must have been written with the same
        seed, batch size, learning rate and schedule. ``None`` (default) resumes whenever a
        checkpoint path is given, ``True`` also insists on one, ``False`` starts afresh and
        overwrites it (the same rule as :func:`helpers.gan.train_gan`).
    seed : int
        Seed of every random draw of the loop.
    device : optional
        Default: the model's device.
    progress : bool
        Show a progress bar with the loss (on the main process).
    channels_last : bool, optional
        Train in ``torch.channels_last`` memory format (:func:`helpers.optim.memory_format`);
        ``None`` (default): the format measured fastest for this loop on the device
        (:data:`CHANNELS_LAST_FASTEST`). The result is the same up to float rounding; the model
        is handed back in the usual contiguous format.
    accelerator : accelerate.Accelerator, optional
        Train with it (the model and optimiser are passed through ``accelerator.prepare``; the
        device is the accelerator's). ``batch_size`` must be divisible by its
        ``num_processes``. ``TrainResult.model`` is the unwrapped model.
    precision : {"float32", "bf16"}
        ``"bf16"`` runs the forward pass under bf16 autocast (on CUDA it may use the tensor
        cores; the weights, the optimiser and the loss stay float32). Default: float32.
    compile : bool
        Run the forward pass through ``torch.compile`` (pays on long GPU runs; the first steps
        are slow while it compiles). Default off.
    check_range : bool
        Insist that ``images`` lie in ``[-1, 1]`` (default). ``False`` for data without a fixed
        range, such as an autoencoder's latents scaled to unit variance (:mod:`helpers.latent`).

    Returns
    -------
    TrainResult
        ``.model``, ``.ema`` (sample with this one), ``.loss_history`` (the loss of the whole
        batch), ``.steps``.
    """
    _check(model, images, labels, cond, steps, batch_size, lr, cond_drop, ema_decay,
           checkpoint_every, warmup, grad_clip, seed, check_range)  # fmt: skip
    check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    check_choice(precision, "precision", ("float32", "bf16"))
    if schedule_steps is not None:
        check_int(schedule_steps, "schedule_steps", minimum=steps)
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path")
    resume = checkpoint_path is not None if resume is None else resume
    world, rank, main = 1, 0, True
    if accelerator is not None:
        world, rank = accelerator.num_processes, accelerator.process_index
        main = accelerator.is_main_process
        if batch_size % world:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the accelerator's {world} processes"
            )
        device = accelerator.device
    device = as_device(device) or next(model.parameters()).device
    fmt = memory_format(channels_last, device, CHANNELS_LAST_FASTEST)
    model.to(device).train()
    model.to(memory_format=fmt)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype  # float16 images train a float32 model, and so on
    data = images.to(device, dtype if dtype.is_floating_point else images.dtype)
    data = data.contiguous(memory_format=fmt)
    labels = labels.to(device) if labels is not None else None
    cond = cond.to(device) if cond is not None else None
    schedule = schedule.to(device)
    history: list[float] = []
    start, earlier_seconds = 0, 0.0
    run_meta = {"seed": seed, "batch_size": batch_size, "lr": lr}
    run_meta |= {"schedule": schedule.kind, "T": schedule.T}
    if schedule_steps is not None:  # a staged run: its checkpoints must share the schedule
        run_meta["schedule_steps"] = schedule_steps
    horizon = schedule_steps or steps
    meta = None
    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        try:
            meta = checkpoint.load_training_state(
                checkpoint_path, model=model, optimizer=opt, ema=ema, generators={"train": gen},
                expect=run_meta,
            )  # fmt: skip
        except checkpoint.CheckpointError as err:
            if err.moved_to is None:  # the user's own file: stop and name it
                raise
            logger.warning("training from scratch: %s", err)  # a cache file: made again
    if meta is not None:
        start = int(meta["step"])
        earlier_seconds = float(meta.get("seconds", 0.0))
        history = meta["extra"].get("loss_history", torch.empty(0)).tolist()
        logger.info("resumed from %s at step %d", checkpoint_path, start)
        if start > steps:
            raise ValueError(
                f"checkpoint {checkpoint_path} is at step {start}, beyond steps={steps}"
            )

    net, share = model, slice(rank * batch_size // world, (rank + 1) * batch_size // world)
    if accelerator is not None:  # wraps the model for gradient averaging across processes
        net, opt = accelerator.prepare(model, opt)
    if compile:
        net = torch.compile(net)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def save(step: int, elapsed: float) -> None:
        if accelerator is not None:
            accelerator.wait_for_everyone()
        if checkpoint_path is not None and main:
            checkpoint.save_training_state(
                checkpoint_path,
                model=model,
                step=step,
                optimizer=opt,
                ema=ema,
                generators={"train": gen},
                extra={"loss_history": torch.tensor(history, dtype=torch.float64)},
                meta={**run_meta, "steps": steps, "seconds": elapsed},
            )

    began = time.perf_counter()

    def seconds() -> float:  # training time so far, earlier runs included
        return earlier_seconds + time.perf_counter() - began

    bar = tqdm(range(start, steps), disable=not (progress and main), desc="train", initial=start,
               total=steps)  # fmt: skip
    for step in bar:
        idx = torch.randint(0, data.shape[0], (batch_size,), generator=gen).to(device)
        y = labels[idx] if labels is not None else None
        c = cond[idx] if cond is not None else None
        y, c, _ = drop_condition(model, y, c, cond_drop, batch=batch_size, generator=gen)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, lr, steps=horizon, warmup=warmup, schedule=lr_schedule)
        if accelerator is None:
            with autocast:
                loss = diffusion_loss(net, data[idx], schedule, generator=gen, y=y, cond=c)
            history.append(loss.item())
        else:  # the whole batch's draws, then this process's share of them
            t = torch.randint(0, schedule.T, (batch_size,), generator=gen)
            noise = torch.randn((batch_size, *data.shape[1:]), generator=gen)
            y, c = (v[share] if v is not None else None for v in (y, c))
            with autocast:
                loss = diffusion_loss(net, data[idx[share]], schedule, y=y, cond=c, t=t[share],
                                      noise=noise[share])  # fmt: skip
            history.append(accelerator.reduce(loss.detach(), reduction="mean").item())
        if not math.isfinite(history[-1]):
            raise FloatingPointError(
                f"the diffusion loss became {history[-1]} at step {step + 1} of {steps}; nothing "
                "was saved for this step (lower lr, or set grad_clip)"
            )
        opt.zero_grad(set_to_none=True)
        if accelerator is None:
            loss.backward()
        else:
            accelerator.backward(loss)
        if grad_clip is not None:  # after the backward pass the gradients are averaged
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        ema_update(ema, model, ema_decay_at(step, ema_decay))
        if step % 10 == 0 or step == steps - 1:
            bar.set_postfix(loss=f"{sum(history[-50:]) / len(history[-50:]):.4f}")
        if (step + 1) % checkpoint_every == 0 and step + 1 < steps:
            save(step + 1, seconds())
    total_seconds = seconds() if start < steps else earlier_seconds
    if start < steps:  # a finished checkpoint that was only loaded is left as it is
        save(steps, total_seconds)
    model.eval()
    for net in (model, ema):  # hand the networks back in the usual format
        net.to(memory_format=torch.contiguous_format)
    return TrainResult(
        model=model,
        ema=ema,
        loss_history=history,
        steps=steps,
        resumed_from=start,
        seconds=total_seconds,
    )
