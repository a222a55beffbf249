"""Optimisation pieces the training loops share: learning-rate schedules and an EMA of the weights.

* :func:`lr_at` — linear warm-up, then cosine decay to 10 % (or a constant rate), as a pure
  function of the step, so a resumed run needs no scheduler state;
* :func:`ema_update` and :func:`ema_decay_at` — the exponential moving average of a network's
  weights, θ_ema ← d·θ_ema + (1 − d)·θ, with a warm-up of the decay so the average forgets the
  initial weights; diffusion models (Ho et al. 2020, App. B) and GANs (Karras et al. 2018)
  sample with the average.

References
----------
.. [1] J. Ho, A. Jain, P. Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020.
.. [2] T. Karras, T. Aila, S. Laine, J. Lehtinen, "Progressive Growing of GANs", ICLR 2018.
.. [3] I. Loshchilov, F. Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
   ICLR 2017 (cosine decay).

Examples
--------
>>> from helpers import optim
>>> [round(optim.lr_at(s, 1.0, steps=100, warmup=10), 3) for s in (0, 9, 10, 99)]
[0.1, 1.0, 1.0, 0.1]
>>> round(optim.ema_decay_at(0, 0.999), 4), optim.ema_decay_at(10_000, 0.999)
(0.1, 0.999)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["LR_SCHEDULES", "ema_decay_at", "ema_update", "lr_at", "memory_format"]

LR_SCHEDULES = ("cosine", "constant")


def lr_at(step: int, lr: float, *, steps: int, warmup: int = 0, schedule: str = "cosine") -> float:
    """Learning rate at ``step`` (0-based): linear warm-up over ``warmup`` steps, then either a
    cosine decay from ``lr`` to ``0.1·lr`` at ``steps`` or the constant ``lr``.

    Parameters
    ----------
    step : int
        The step about to be taken.
    lr : float
        Peak learning rate.
    steps : int
        Total steps of the run.
    warmup : int
        Warm-up steps (0: none).
    schedule : {"cosine", "constant"}

    Returns
    -------
    float
    """
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    if step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, steps - warmup)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA decay used at ``step``: ``min(decay, (1 + step) / (10 + step))``.

    Early steps count more, so the average does not remember the random initialisation for
    thousands of steps.
    """
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay·θ_ema + (1 − decay)·θ for parameters; buffers (e.g. batch-norm statistics,
    spectral-norm vectors) are copied.

    Parameters
    ----------
    ema, model : nn.Module
        Networks of the same architecture; ``ema`` is updated in place.
    decay : float
        In ``[0, 1]``; 0 copies the weights.
    """
    if not 0 <= decay <= 1:
        raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p.detach(), 1 - decay)
    for be, b in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(b)


def memory_format(
    channels_last: bool | None, device: torch.device, fastest: Mapping[str, bool]
) -> torch.memory_format:
    """The memory format a training loop keeps its network and images in.

    Parameters
    ----------
    channels_last : bool or None
        ``True``: ``torch.channels_last`` (NHWC strides, which the convolution kernels of oneDNN
        and cuDNN often run faster); ``False``: the usual contiguous NCHW; ``None``: what was
        measured fastest for this loop on ``device.type`` (``fastest``), contiguous where
        nothing was measured.
    device : torch.device
        Where the loop runs.
    fastest : mapping of str to bool
        Device type → whether channels_last was measured faster for this loop
        (``benchmarks/memory_format.py``).

    Returns
    -------
    torch.memory_format

    Raises
    ------
    TypeError
        ``channels_last`` that is neither a bool nor ``None``.

    Examples
    --------
    >>> memory_format(None, torch.device("cpu"), {"cpu": True})
    torch.channels_last
    >>> memory_format(None, torch.device("mps"), {"cpu": True})
    torch.contiguous_format
    """
    if channels_last is not None and not isinstance(channels_last, bool):
        raise TypeError(f"channels_last must be True, False or None, got {channels_last!r}")
    use = fastest.get(device.type, False) if channels_last is None else channels_last
    return torch.channels_last if use else torch.contiguous_format
